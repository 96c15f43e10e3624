#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace ordo::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Writes all of `data`, retrying on EINTR. Async-signal-safe.
void WriteAll(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Runs `fn` with SIGTTOU blocked: a process outside the terminal's foreground group gets
// SIGTTOU (and stops) on tcsetpgrp otherwise.
template <typename Fn>
void WithoutTtou(Fn fn) {
  sigset_t ttou;
  sigset_t old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  pthread_sigmask(SIG_BLOCK, &ttou, &old);
  fn();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

Result<std::unique_ptr<SignalWatch>> SignalWatch::Create() {
  std::unique_ptr<SignalWatch> watch(new SignalWatch);
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kForwardedSignals) sigaddset(&set, sig);
  sigaddset(&set, SIGCHLD);
  // SIGCHLD set to SIG_IGN by whoever started ordo would make the kernel reap the job itself
  // and waitpid() fail with ECHILD.
  signal(SIGCHLD, SIG_DFL);
  if (pthread_sigmask(SIG_BLOCK, &set, &watch->original_) != 0) {
    return InternalError(Errno("pthread_sigmask"));
  }
  watch->fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (watch->fd_ < 0) {
    const Status error = InternalError(Errno("signalfd"));
    pthread_sigmask(SIG_SETMASK, &watch->original_, nullptr);
    return error;
  }
  return watch;
}

SignalWatch::~SignalWatch() {
  if (fd_ >= 0) close(fd_);
  pthread_sigmask(SIG_SETMASK, &original_, nullptr);
}

int SignalWatch::Take() {
  signalfd_siginfo info;
  while (true) {
    const ssize_t n = read(fd_, &info, sizeof(info));
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof(info))) return 0;
    return static_cast<int>(info.ssi_signo);
  }
}

Result<std::unique_ptr<Job>> Job::Start(const JobSpec& spec) {
  if (spec.argv.empty()) return InvalidArgumentError("no command given");
  // Everything the child needs is built before fork: between fork and exec the child of a
  // multi-threaded process may only make async-signal-safe calls (no malloc).
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const bool take_terminal =
      spec.take_terminal && isatty(STDIN_FILENO) == 1 && tcgetpgrp(STDIN_FILENO) == getpgrp();

  // The child reports a failed exec through this pipe; a successful exec closes it (CLOEXEC),
  // and the parent reads EOF.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return InternalError(Errno("pipe2"));
  // The child waits for a byte on `go` before exec, so that the sentinel is in place before
  // the job can start anything: were ordo killed in between, the job's first grandchildren
  // would escape. EOF (ordo died first) makes the child give up.
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) {
    const Status error = InternalError(Errno("pipe2"));
    close(report[0]);
    close(report[1]);
    return error;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const Status error = InternalError(Errno("fork"));
    for (int fd : {report[0], report[1], go[0], go[1]}) close(fd);
    return error;
  }
  if (pid == 0) {
    close(report[0]);
    close(go[1]);
    setpgid(0, 0);
    if (take_terminal) {
      sigset_t ttou;
      sigemptyset(&ttou);
      sigaddset(&ttou, SIGTTOU);
      sigprocmask(SIG_BLOCK, &ttou, nullptr);
      tcsetpgrp(STDIN_FILENO, getpid());
    }
    // A job never runs on without its lock: die with ordo. If ordo died before prctl, the
    // signal will never come; getppid() then names someone else (init or a subreaper).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(128 + SIGKILL);
    char byte;
    ssize_t got;
    do {
      got = read(go[0], &byte, 1);
    } while (got < 0 && errno == EINTR);
    if (got != 1) _exit(128 + SIGKILL);
    sigprocmask(SIG_SETMASK, &spec.mask, nullptr);
    execvpe(argv[0], argv.data(), envp.data());
    const int error = errno;
    WriteAll(report[1], &error, sizeof(error));
    _exit(127);
  }
  close(report[1]);
  close(go[0]);
  // Also done by the child; whichever runs first wins, so that Signal() never misses the group.
  setpgid(pid, pid);
  std::unique_ptr<Job> job(new Job);
  job->pid_ = pid;
  job->took_terminal_ = take_terminal;
  job->command_ = spec.command;
  job->StartSentinel(go[1]);
  const char byte = 'g';
  WriteAll(go[1], &byte, 1);
  close(go[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(report[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    while (waitpid(pid, &job->wait_status_, 0) < 0 && errno == EINTR) {
    }
    job->reaped_ = true;
    job->RestoreTerminal();
    const std::string message =
        "cannot execute '" + spec.argv[0] + "': " + std::strerror(exec_errno);
    if (exec_errno == ENOENT || exec_errno == ENOTDIR) return NotFoundError(message);
    return InvalidArgumentError(message);
  }
  return job;
}

// The sentinel outlives ordo by design: it blocks on a pipe whose only write end ordo holds
// (close-on-exec, created after the job was forked, so the job never has it). ordo's death,
// however it happens, closes that end; the sentinel reads EOF and kills the job's group. On a
// normal exit ordo writes one byte first, which disarms it. Its mask, inherited from ordo's
// main thread, blocks SIGTERM, SIGINT, SIGHUP and SIGQUIT, so a signal meant for ordo's own
// group does not take it down first.
void Job::StartSentinel(int close_in_sentinel) {
  int guard[2];
  if (pipe2(guard, O_CLOEXEC) != 0) {
    spdlog::warn("{}: {}; the job's group will not be killed if ordo is", command_,
                 Errno("pipe2"));
    return;
  }
  const pid_t group = pid_;
  const pid_t sentinel = fork();
  if (sentinel == 0) {
    close(guard[1]);
    close(close_in_sentinel);
    char byte;
    ssize_t n;
    do {
      n = read(guard[0], &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) kill(-group, SIGKILL);
    _exit(0);
  }
  close(guard[0]);
  if (sentinel < 0) {
    spdlog::warn("{}: {}; the job's group will not be killed if ordo is", command_,
                 Errno("fork"));
    close(guard[1]);
    return;
  }
  sentinel_pid_ = sentinel;
  sentinel_fd_ = guard[1];
}

void Job::DisarmSentinel() {
  if (sentinel_fd_ < 0) return;
  const char byte = 'x';
  WriteAll(sentinel_fd_, &byte, 1);
  close(sentinel_fd_);
  sentinel_fd_ = -1;
  int status = 0;
  while (waitpid(sentinel_pid_, &status, 0) < 0 && errno == EINTR) {
  }
  sentinel_pid_ = -1;
}

void Job::RestoreTerminal() {
  if (!took_terminal_) return;
  took_terminal_ = false;
  WithoutTtou([] { tcsetpgrp(STDIN_FILENO, getpgrp()); });
}

Job::~Job() {
  if (!reaped_) {
    Signal(SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  DisarmSentinel();
  RestoreTerminal();
}

void Job::Signal(int sig) {
  if (kill(-pid_, sig) != 0 && errno != ESRCH) {
    spdlog::warn("{}: {}", command_, Errno("kill"));
  }
}

bool Job::TryReap() {
  if (reaped_) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  reaped_ = true;
  wait_status_ = status;
  RestoreTerminal();
  return true;
}

JobOutcome Supervise(Job& job, SignalWatch& signals, const SuperviseOptions& options) {
  JobOutcome outcome;
  auto kill_at = Clock::time_point::max();
  while (true) {
    if (job.TryReap()) {
      // A lost lease must not leave part of the job running on without it.
      if (outcome.lost) job.Signal(SIGKILL);
      outcome.wait_status = job.wait_status();
      return outcome;
    }
    int timeout = -1;
    if (kill_at != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(kill_at - Clock::now());
      timeout = static_cast<int>(std::max<std::int64_t>(0, left.count()));
    }
    pollfd fds[2] = {{signals.fd(), POLLIN, 0}, {-1, POLLIN, 0}};
    if (!outcome.lost) fds[1].fd = options.lost_fd;
    const int ready = poll(fds, 2, timeout);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("{}: {}", options.command, Errno("poll"));
    }
    if (kill_at != Clock::time_point::max() && Clock::now() >= kill_at) {
      spdlog::warn("{}: the job is still running after the grace period; SIGKILL",
                   options.command);
      job.Signal(SIGKILL);
      kill_at = Clock::time_point::max();
    }
    if (ready <= 0) continue;
    if (fds[0].revents != 0) {
      for (int sig = signals.Take(); sig != 0; sig = signals.Take()) {
        if (sig == SIGCHLD) continue;  // reaped at the top of the loop
        job.Signal(sig);
        outcome.forwarded = sig;
      }
    }
    if (fds[1].fd >= 0 && fds[1].revents != 0) {
      outcome.lost = true;
      const auto now = Clock::now();
      kill_at = now + options.kill_grace;
      // While the self-fencing deadline is ahead, the job must be gone by then; once it has
      // passed (ordo itself was frozen) the damage is done and the job gets its full grace.
      if (options.kill_by) {
        const auto by = options.kill_by();
        if (by > now) kill_at = std::min(kill_at, by);
      }
      spdlog::warn("{}: {} was lost; SIGTERM to the job, SIGKILL in {} ms", options.command,
                   options.lost_what,
                   std::chrono::ceil<std::chrono::milliseconds>(kill_at - now).count());
      job.Signal(SIGTERM);
    }
  }
}

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 125;
}

}  // namespace ordo::cli
