// ASSERT_OK(call()) / EXPECT_OK(call()) for the sqlite:// tests: print the status when it is not
// OK.
#ifndef ORDO_TESTS_SQLITE_STATUS_MATCHERS_H_
#define ORDO_TESTS_SQLITE_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include "ordo/status.h"

namespace ordo::testing {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}
MATCHER(IsOk, "is OK") {
  *result_listener << StatusOf(arg).ToString();
  return StatusOf(arg).ok();
}
#define ASSERT_OK(expr) ASSERT_THAT((expr), ::ordo::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::ordo::testing::IsOk())

}  // namespace ordo::testing

#endif  // ORDO_TESTS_SQLITE_STATUS_MATCHERS_H_
