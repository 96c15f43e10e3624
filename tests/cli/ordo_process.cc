#include "ordo_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <thread>

#include "ordo/registry.h"

namespace ordo::testing {
namespace {

using Clock = std::chrono::steady_clock;

pid_t Spawn(const std::vector<std::string>& args, int* out, int* in) {
  int o[2];
  int i[2];
  if (pipe2(o, O_CLOEXEC) != 0 || pipe2(i, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  std::vector<std::string> full = {ORDO_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    dup2(o[1], STDOUT_FILENO);
    dup2(i[0], STDIN_FILENO);
    execv(argv[0], argv.data());
    _exit(126);
  }
  close(o[1]);
  close(i[0]);
  *out = o[0];
  *in = i[1];
  return pid;
}

int CodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Finished RunOrdo(const std::vector<std::string>& args) {
  Ordo ordo(args);
  ordo.CloseStdin();  // a command that reads its stdin gets EOF, not a hang
  Finished f;
  for (std::string line = ordo.ReadLine(); line != "<eof>" && line != "<timeout>";
       line = ordo.ReadLine()) {
    f.out += line + "\n";
  }
  f.code = ordo.Wait();
  return f;
}

Ordo::Ordo(const std::vector<std::string>& args) { pid_ = Spawn(args, &out_, &in_); }

Ordo::~Ordo() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    Wait();
  }
  close(out_);
  if (in_ >= 0) close(in_);
}

std::string Ordo::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return "<timeout>";
    pollfd p{out_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return "<timeout>";
    char buf[1024];
    const ssize_t n = read(out_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (buffer_.empty()) return "<eof>";
      std::string rest;
      rest.swap(buffer_);
      return rest;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

void Ordo::WriteLine(const std::string& line) {
  const std::string data = line + "\n";
  if (write(in_, data.data(), data.size()) < 0) {
    // It exited; the test's assertions say so.
  }
}

void Ordo::CloseStdin() {
  if (in_ >= 0) close(in_);
  in_ = -1;
}

void Ordo::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

bool Ordo::running() {
  if (reaped_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    code_ = CodeOf(status);
    return false;
  }
  return true;
}

int Ordo::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!reaped_) {
    if (!running()) break;
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return code_;
}

bool HasBackend(const std::string& scheme) {
  const auto schemes = RegisteredSchemes();
  return std::find(schemes.begin(), schemes.end(), scheme) != schemes.end();
}

bool GoneWithin(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
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
