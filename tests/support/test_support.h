// Helpers shared by ordo's test suites: unique names and a per-process directory, on top of
// the harness library (tools/harness), which the tests, ordo-bench and ordo-torture share.
#ifndef ORDO_TESTS_SUPPORT_TEST_SUPPORT_H_
#define ORDO_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <string>

// The harness (tools/harness): TempDir, Child, FreeLoopbackPort, ReadFile, Tail, ShellQuote.
#include "temp_dir.h"
#include "subprocess.h"

namespace ordo::testing {

// A directory that lives until the test process exits (for URLs handed out by factories).
std::string ProcessTempDir();

// "prefix-<pid>-<counter>-<random>": distinct across tests, processes and runs.
std::string UniqueName(const std::string& prefix);

}  // namespace ordo::testing

#endif  // ORDO_TESTS_SUPPORT_TEST_SUPPORT_H_
