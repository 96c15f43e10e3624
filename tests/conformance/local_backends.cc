// The local backends join the conformance suite. The file backends get a fresh lock directory
// per test (Open creates it; its parent exists).
#include "conformance.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Local, ConformanceTest,
    ::testing::Values(BackendCase{"inproc", [] { return "inproc:"; }},
                      BackendCase{"flock",
                                  [] {
                                    return "flock://" + ProcessTempDir() + "/" +
                                           UniqueName("flock");
                                  },
                                  10'000},
                      BackendCase{"fcntl",
                                  [] {
                                    return "fcntl://" + ProcessTempDir() + "/" +
                                           UniqueName("fcntl");
                                  },
                                  10'000}),
    BackendCaseName);

}  // namespace
}  // namespace ordo::testing
