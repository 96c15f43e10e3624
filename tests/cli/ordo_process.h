// Running the real `ordo` binary from tests: to completion (exit code and stdout), or in the
// background (a testing::Child).
#ifndef ORDO_TESTS_CLI_ORDO_PROCESS_H_
#define ORDO_TESTS_CLI_ORDO_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "test_support.h"  // Child, ExitCode (tools/harness/subprocess.h)

namespace ordo::testing {

struct Finished {
  int code = -1;    // exit code, or 128+N when killed by signal N
  std::string out;  // everything written to stdout
};

// `ordo args…` in the background; stdout and stdin are pipes, stderr goes to the test log.
std::unique_ptr<Child> StartOrdo(const std::vector<std::string>& args);

// Runs `ordo args…` to completion, its stdin closed.
Finished RunOrdo(const std::vector<std::string>& args);

// a followed by b.
std::vector<std::string> Cat(std::vector<std::string> a, const std::vector<std::string>& b);

// True if libordo (as linked into this test, and so into the binary) has the URL scheme.
bool HasBackend(const std::string& scheme);

// True once `pid` no longer exists (polled, up to `timeout`).
bool GoneWithin(pid_t pid, std::chrono::milliseconds timeout);

}  // namespace ordo::testing

#endif  // ORDO_TESTS_CLI_ORDO_PROCESS_H_
