// Running the real `ordo` binary from tests: to completion (exit code and stdout), or in the
// background with its stdout read line by line.
#ifndef ORDO_TESTS_CLI_ORDO_PROCESS_H_
#define ORDO_TESTS_CLI_ORDO_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace ordo::testing {

struct Finished {
  int code = -1;    // exit code, or 128+N when killed by signal N
  std::string out;  // everything written to stdout
};

// Runs `ordo args…` to completion, its stdin closed. stderr is inherited (it shows up in the test log).
Finished RunOrdo(const std::vector<std::string>& args);

// `ordo args…` in the background.
class Ordo {
 public:
  explicit Ordo(const std::vector<std::string>& args);
  ~Ordo();  // SIGKILL and reap if still running
  Ordo(const Ordo&) = delete;
  Ordo& operator=(const Ordo&) = delete;

  pid_t pid() const { return pid_; }
  // One line of stdout without '\n'; "<eof>" at end of file, "<timeout>" after `timeout`.
  std::string ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Writes a line to its stdin.
  void WriteLine(const std::string& line);
  void CloseStdin();
  void Signal(int sig);
  // Waits for exit and returns the exit code (128+N for signal N); -1 after `timeout`.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  bool running();

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  bool reaped_ = false;
  int code_ = -1;
  std::string buffer_;
};

// True if libordo (as linked into this test, and so into the binary) has the URL scheme.
bool HasBackend(const std::string& scheme);

// True once `pid` no longer exists (polled, up to `timeout`).
bool GoneWithin(pid_t pid, std::chrono::milliseconds timeout);

}  // namespace ordo::testing

#endif  // ORDO_TESTS_CLI_ORDO_PROCESS_H_
