// Helpers shared by ordo's test suites: temporary directories, unique names, child processes.
#ifndef ORDO_TESTS_SUPPORT_TEST_SUPPORT_H_
#define ORDO_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace ordo::testing {

// A fresh directory under $TMPDIR, removed (recursively) by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A directory that lives until the test process exits (for URLs handed out by factories).
std::string ProcessTempDir();

// "prefix-<pid>-<counter>-<random>": distinct across tests, processes and runs.
std::string UniqueName(const std::string& prefix);

// A child process started with fork+exec, its stdout readable line by line and its stdin
// writable. The destructor kills (SIGKILL) and reaps it if it still runs.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Reads one line from the child's stdout (without '\n'); empty on EOF or timeout.
  std::string ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // True once ReadLine met the end of the child's stdout.
  bool eof() const { return eof_; }
  void WriteLine(const std::string& line);
  void CloseStdin();
  void Kill(int sig);
  // Waits for exit; returns the raw wait status.
  int Wait();

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int in_fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
  bool reaped_ = false;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

// The whole file; empty when it cannot be read.
std::string ReadFile(const std::string& path);
// The last `bytes` of `text` (for server logs in error messages), "…"-prefixed when cut.
std::string Tail(const std::string& text, std::size_t bytes = 3000);
// `s` single-quoted for /bin/sh.
std::string ShellQuote(const std::string& s);

}  // namespace ordo::testing

#endif  // ORDO_TESTS_SUPPORT_TEST_SUPPORT_H_
