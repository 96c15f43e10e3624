// The local backends join the conformance suite.
#include "conformance.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Local, ConformanceTest,
                         ::testing::Values(BackendCase{"inproc", [] { return "inproc:"; }}),
                         BackendCaseName);

}  // namespace
}  // namespace ordo::testing
