#include "procs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "subprocess.h"

namespace ordo::bench {
namespace {

// Pids the signal handler kills. A fixed array of atomics: the handler may only do
// async-signal-safe work.
constexpr int kMaxPids = 64;
std::array<std::atomic<pid_t>, kMaxPids> g_pids{};

void OnSignal(int sig) {
  for (auto& p : g_pids) {
    const pid_t pid = p.load();
    if (pid > 0) kill(pid, SIGKILL);
  }
  _exit(128 + sig);
}

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

}  // namespace

void RegisterPid(pid_t pid) {
  for (auto& p : g_pids) {
    pid_t expected = 0;
    if (p.compare_exchange_strong(expected, pid)) return;
  }
}

void UnregisterPid(pid_t pid) {
  for (auto& p : g_pids) {
    pid_t expected = pid;
    if (p.compare_exchange_strong(expected, 0)) return;
  }
}

void InstallCleanupHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  // A server that dies must not kill the bench through a write to its socket.
  signal(SIGPIPE, SIG_IGN);
}

std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return Executable(name) ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream dirs(std::string(path != nullptr ? path : "/usr/bin:/bin") +
                         ":/usr/sbin:/sbin:/usr/local/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && Executable(dir + "/" + name)) return dir + "/" + name;
  }
  glob_t g{};
  std::string found;
  if (glob(("/usr/lib/postgresql/*/bin/" + name).c_str(), 0, nullptr, &g) == 0 && g.gl_pathc > 0) {
    found = g.gl_pathv[g.gl_pathc - 1];  // the newest version
  }
  globfree(&g);
  return found;
}

Server::Server(const std::vector<std::string>& argv)
    : child_(std::make_unique<testing::Child>(argv)) {
  RegisterPid(child_->pid());
}

Server::~Server() {
  if (!stopped_) {
    UnregisterPid(child_->pid());
    child_.reset();  // SIGKILL and reap
  }
}

pid_t Server::pid() const { return child_->pid(); }

void Server::Stop() {
  if (stopped_) return;
  child_->Kill(SIGTERM);
  child_->Wait();
  UnregisterPid(child_->pid());
  stopped_ = true;
}

int RunCommand(const std::vector<std::string>& argv, double* wall_us,
               const std::vector<std::string>& extra_env) {
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = testing::Spawn(
      argv, {.stdin_fd = null, .stdout_fd = null, .stderr_fd = null, .extra_env = extra_env});
  if (null >= 0) close(null);
  if (pid < 0) return -1;
  const int status = testing::WaitForExit(pid);
  *wall_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                 .count();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long PeakRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

}  // namespace ordo::bench
