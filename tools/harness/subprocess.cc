#include "subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace ordo::testing {

pid_t Spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  // Everything the child needs is built here, before the fork.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  std::vector<char*> env;
  if (!o.extra_env.empty()) {
    for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
    for (const auto& e : o.extra_env) env_storage.push_back(e);
    for (auto& e : env_storage) env.push_back(e.data());
    env.push_back(nullptr);
  }
  const bool change_ids = o.uid != static_cast<uid_t>(-1);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;  // the parent, or -1

  // The child: only async-signal-safe calls until exec.
  if (o.kill_with_parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // the parent died before the prctl
  }
  if (o.new_session) setsid();
  if (o.new_process_group) setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // fd 3 first, so that a stdio descriptor numbered 3 is not overwritten by it.
  if (o.keep_fd >= 0) {
    if (o.keep_fd == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(o.keep_fd, 3);  // dup2 clears close-on-exec on the new descriptor
    }
  }
  if (o.stdin_fd >= 0) dup2(o.stdin_fd, STDIN_FILENO);
  if (o.stdout_fd >= 0) dup2(o.stdout_fd, STDOUT_FILENO);
  if (o.stderr_fd >= 0) dup2(o.stderr_fd, STDERR_FILENO);
  if (!o.directory.empty() && chdir(o.directory.c_str()) != 0) _exit(126);
  if (change_ids && (setgroups(0, nullptr) != 0 || setgid(o.gid) != 0 || setuid(o.uid) != 0)) {
    _exit(126);
  }
  if (env.empty()) {
    execv(args[0], args.data());
  } else {
    execve(args[0], args.data(), env.data());
  }
  _exit(127);
}

pid_t SpawnLogged(const std::vector<std::string>& argv, int keep_fd,
                  const std::string& log_path) {
  const int out = log_path.empty()
                      ? -1
                      : open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t pid =
      Spawn(argv, {.stdout_fd = out, .stderr_fd = out, .keep_fd = keep_fd});
  if (out >= 0) close(out);
  return pid;
}

int WaitForExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

int RunCommand(const std::vector<std::string>& argv, const std::string& log_path) {
  const pid_t pid = SpawnLogged(argv, -1, log_path);
  if (pid < 0) return -1;
  const int status = WaitForExit(pid);
  return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Raw syscalls: glibc 2.36's <sys/pidfd.h> lacks extern "C", so its wrappers do not link
// from C++.
int OpenPidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

bool SignalPidfd(int pidfd, int sig) {
  return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}

bool SendWithFd(int socket, const std::string& text, int fd_to_pass) {
  iovec iov{.iov_base = const_cast<char*>(text.data()), .iov_len = text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd_to_pass >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
  }
  while (true) {
    const ssize_t n = sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n >= 0) return true;
    if (errno != EINTR) return false;
  }
}

std::optional<std::string> ReceiveWithFd(int socket, int* fd) {
  *fd = -1;
  char buf[256];
  iovec iov{.iov_base = buf, .iov_len = sizeof(buf)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(fd, CMSG_DATA(c), sizeof(int));
    }
  }
  return std::string(buf, static_cast<std::size_t>(n));
}

Child::Child(const std::vector<std::string>& argv, bool kill_with_parent) {
  int out[2];
  int in[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (pipe2(in, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    throw std::runtime_error("pipe2 failed");
  }
  pid_ = Spawn(argv,
               {.stdin_fd = in[0], .stdout_fd = out[1], .kill_with_parent = kill_with_parent});
  close(out[1]);
  close(in[0]);
  out_fd_ = out[0];
  in_fd_ = in[1];
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

Child::~Child() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    Wait();
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (in_fd_ >= 0) close(in_fd_);
}

std::string Child::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{out_fd_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "";
    char buf[512];
    const ssize_t n = read(out_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;
      return "";
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

void Child::WriteLine(const std::string& line) {
  const std::string data = line + "\n";
  if (write(in_fd_, data.data(), data.size()) < 0) {
    // The child may have exited; the caller's own checks report that.
  }
}

void Child::CloseStdin() {
  if (in_fd_ >= 0) close(in_fd_);
  in_fd_ = -1;
}

void Child::Kill(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int Child::Wait() {
  const int status = WaitForExit(pid_);
  reaped_ = true;
  return status;
}

Watchdog::~Watchdog() { Finish(); }

void Watchdog::Start(const std::string& script) {
  if (fd_ >= 0) throw std::runtime_error("watchdog started twice");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2 for a watchdog: ") + std::strerror(errno));
  }
  const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t pid = Spawn({"/bin/sh", "-c", "cat >/dev/null; " + script},
                          {.stdin_fd = fds[0], .stdout_fd = devnull, .stderr_fd = devnull,
                           .new_session = true});
  const int saved = errno;
  if (devnull >= 0) close(devnull);
  close(fds[0]);
  if (pid < 0) {
    close(fds[1]);
    throw std::runtime_error(std::string("fork for a watchdog: ") + std::strerror(saved));
  }
  owner_pid_ = getpid();
  pid_ = pid;
  fd_ = fds[1];
}

void Watchdog::Finish() {
  if (fd_ < 0 || getpid() != owner_pid_) return;
  close(fd_);  // EOF: the script runs now
  fd_ = -1;
  WaitForExit(pid_);
  pid_ = -1;
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

bool WaitForPort(int port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const int fd = ConnectLoopback(port);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace ordo::testing
