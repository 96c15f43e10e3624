#include "ordo_process.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <thread>

#include "ordo/registry.h"

namespace ordo::testing {

std::unique_ptr<Child> StartOrdo(const std::vector<std::string>& args) {
  // A line written to an ordo that has already exited must fail the test, not kill it.
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> argv = {ORDO_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<Child>(argv);
}

Finished RunOrdo(const std::vector<std::string>& args) {
  auto ordo = StartOrdo(args);
  ordo->CloseStdin();  // a command that reads its stdin gets EOF, not a hang
  Finished f;
  while (true) {
    std::string line = ordo->ReadLine();
    if (line.empty() && ordo->eof()) break;
    f.out += line + "\n";
  }
  f.code = ExitCode(ordo->Wait());
  return f;
}

std::vector<std::string> Cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool HasBackend(const std::string& scheme) {
  const auto schemes = RegisteredSchemes();
  return std::find(schemes.begin(), schemes.end(), scheme) != schemes.end();
}

bool GoneWithin(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    // A zombie still answers kill(0): look at its state.
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (FILE* f = std::fopen(path, "r")) {
      char state = 0;
      const int n = std::fscanf(f, "%*d %*s %c", &state);
      std::fclose(f);
      if (n == 1 && state == 'Z') return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace ordo::testing
