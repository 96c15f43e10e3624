// The one conformance suite every backend passes (DESIGN.md invariants 1-4 and 6).
//
// A backend joins by instantiating ConformanceTest with a BackendCase, in its own file of this
// folder — no assertion is ever copied:
//
//   INSTANTIATE_TEST_SUITE_P(Local, ConformanceTest,
//                            ::testing::Values(BackendCase{"inproc", [] { return "inproc:"; }}),
//                            BackendCaseName);
#ifndef ORDO_TESTS_CONFORMANCE_CONFORMANCE_H_
#define ORDO_TESTS_CONFORMANCE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "ordo/ordo.h"

namespace ordo::testing {

struct BackendCase {
  std::string label;  // [A-Za-z0-9_]+, used in test names
  // Returns the URL of a backend to test; called once per test. It may start servers or make
  // directories; every Open of the same returned URL must see the same locks.
  std::function<std::string()> url;
  // Lock/unlock cycles in total for the multi-process counter test (split across processes).
  int process_increments = 10'000;
};

inline std::ostream& operator<<(std::ostream& os, const BackendCase& c) { return os << c.label; }

inline std::string BackendCaseName(const ::testing::TestParamInfo<BackendCase>& info) {
  return info.param.label;
}

class ConformanceTest : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override;
  // A lock/key name unique to this test run.
  std::string Name(const std::string& base);
  // Opens another Locker on the same backend.
  std::unique_ptr<Locker> OpenAnother();

  std::string url_;
  std::unique_ptr<Locker> locker_;
};

}  // namespace ordo::testing

#endif  // ORDO_TESTS_CONFORMANCE_CONFORMANCE_H_
