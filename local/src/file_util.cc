#include "file_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "file_system.h"

namespace ordo::local {

void UniqueFd::Reset() {
  if (fd_ >= 0) {
    // close() is not retried on EINTR: on Linux the descriptor is gone either way.
    ::close(fd_);
    fd_ = -1;
  }
}

std::string What::str() const {
  std::size_t size = 0;
  for (std::size_t i = 0; i < count_; ++i) size += parts_[i].size();
  std::string out;
  out.reserve(size);
  for (std::size_t i = 0; i < count_; ++i) out.append(parts_[i]);
  return out;
}

Status FromErrno(int err, std::string_view context) {
  std::string message = std::string(context) + ": " + std::generic_category().message(err);
  switch (err) {
    case ENOENT:
      return NotFoundError(std::move(message));
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case ENAMETOOLONG:
    case EEXIST:
    case EINVAL:
    case ENXIO:
    case ETXTBSY:
      return InvalidArgumentError(std::move(message));
    case EIO:
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOLCK:
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case ESTALE:
    case ETIMEDOUT:
    case EDEADLK:
      return UnavailableError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

Result<UniqueFd> OpenLockDirectory(const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return InvalidArgumentError("lock directory '" + path +
                                "' must be an absolute path (flock:///var/lock/app)");
  }
  if (::mkdir(path.c_str(), 0700) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return InvalidArgumentError("cannot create lock directory '" + path +
                                  "': its parent directory does not exist");
    }
    if (err != EEXIST) {
      return InvalidArgumentError(FromErrno(err, "cannot create lock directory '" + path + "'").message());
    }
  }
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOTDIR) {
      return InvalidArgumentError("lock directory '" + path + "' exists and is not a directory");
    }
    return InvalidArgumentError(FromErrno(err, "cannot open lock directory '" + path + "'").message());
  }
  UniqueFd dir(fd);
  ORDO_RETURN_IF_ERROR(CheckLocalFileSystem(dir.get(), path));
  // As root this passes for any directory on a writable file system; a directory that is
  // read-only to root (an immutable attribute) is caught when the store subdirectories are made.
  if (::faccessat(dir.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    return InvalidArgumentError(
        FromErrno(errno, "lock directory '" + path + "' is not writable by this process").message());
  }
  return dir;
}

Result<UniqueFd> OpenSubdirectory(int dirfd, std::string_view name, std::string_view dir_path) {
  const std::string n(name);
  const std::string shown = std::string(dir_path) + "/" + n;
  if (::mkdirat(dirfd, n.c_str(), 0700) != 0 && errno != EEXIST) {
    return InvalidArgumentError(FromErrno(errno, "cannot create directory '" + shown + "'").message());
  }
  int fd;
  do {
    fd = ::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    return InvalidArgumentError(FromErrno(errno, "cannot open directory '" + shown + "'").message());
  }
  return UniqueFd(fd);
}

int OpenAt(int dirfd, std::string_view name, int flags) {
  const std::string n(name);
  int fd;
  do {
    fd = ::openat(dirfd, n.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  return fd >= 0 ? fd : -errno;
}

Status ReadAt(int fd, void* buf, std::size_t len, off_t offset, std::size_t* got,
              const What& what) {
  auto* p = static_cast<unsigned char*>(buf);
  std::size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, p + done, len - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return FromErrno(err, what.str());
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  *got = done;
  return OkStatus();
}

Status WriteAt(int fd, const void* buf, std::size_t len, off_t offset, const What& what) {
  const auto* p = static_cast<const unsigned char*>(buf);
  std::size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pwrite(fd, p + done, len - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return FromErrno(err, what.str());
    }
    done += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

Status WriteVAt(int fd, iovec* parts, int count, off_t offset, const What& what) {
  while (count > 0) {
    const ssize_t n = ::pwritev(fd, parts, count, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return FromErrno(err, what.str());
    }
    if (n == 0) return FromErrno(EIO, what.str());  // never for a regular file; do not spin
    offset += n;
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= parts->iov_len) {
      left -= parts->iov_len;
      ++parts;
      --count;
    }
    if (count > 0) {
      parts->iov_base = static_cast<unsigned char*>(parts->iov_base) + left;
      parts->iov_len -= left;
    }
  }
  return OkStatus();
}

void EncodeU64(std::uint64_t value, unsigned char* out) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out, &value, sizeof(value));  // one store, where the loop below is eight
  } else {
    for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
  }
}

std::uint64_t DecodeU64(const unsigned char* in) {
  std::uint64_t v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, in, sizeof(v));
  } else {
    for (int i = 7; i >= 0; --i) v = (v << 8) | in[i];
  }
  return v;
}

int OfdLock(int fd, short type, off_t start, off_t length, bool block) {
  struct flock fl{};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = length;
  fl.l_pid = 0;  // required for OFD locks
  return ::fcntl(fd, block ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0 ? 0 : errno;
}

Result<bool> OfdRangeHeldByOther(int fd, off_t start, off_t length, const What& what) {
  struct flock fl{};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = length;
  fl.l_pid = 0;
  if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) {
    const int err = errno;
    return FromErrno(err, what.str());
  }
  return fl.l_type != F_UNLCK;
}

// Waiting for a lock with a deadline.
//
// flock(2), F_OFD_SETLKW and F_SETLKW take no timeout, and nothing announces a release: no
// inotify event fires on an unlock that does not close the file (flock(1) -u, F_UNLCK), so a
// watcher would still need a polling fallback. The blocking call itself is the only wait that
// the kernel ends exactly at the release, so we make *it* time out: a POSIX timer
// (timer_create, SIGEV_THREAD_ID) sends a signal to the waiting thread at the deadline, and the
// signal's handler — installed without SA_RESTART — makes the call return EINTR.
//
// The race: the signal can land just before the thread enters the blocking call, and then
// nothing would interrupt it. The timer therefore re-fires every kRefire after the deadline, so
// a wait overshoots its deadline by at most kRefire and never hangs. Before the deadline the
// thread sleeps in the kernel; it wakes only when the lock is released or the timer fires.
//
// The alternatives are worse: a helper thread blocked in flock() cannot be cancelled without a
// signal either (and abandoning it leaks a thread that later grabs the lock), and a backoff poll
// wakes up for nothing, adds latency, and loses to waiters that are already blocked.
//
// The signal (SIGRTMAX-6) is taken only if its disposition is still the default; if the
// application uses it, waits fall back to a bounded exponential backoff poll (1 ms .. 50 ms).
// The signal is unblocked in the waiting thread for the duration of the wait (threads that block
// every signal, as servers using signalfd do, still time out) and drained before the thread's
// mask is restored.
namespace {

constexpr std::chrono::milliseconds kRefire{5};

int WakeSignal() { return SIGRTMAX - 6; }

void OnWakeSignal(int) {}  // its only job is to interrupt the blocking call

bool WakeSignalInstalled() {
  static const bool installed = [] {
    struct sigaction old{};
    if (::sigaction(WakeSignal(), nullptr, &old) != 0) return false;
    if ((old.sa_flags & SA_SIGINFO) != 0) return false;
    if (old.sa_handler == &OnWakeSignal) return true;
    if (old.sa_handler != SIG_DFL) return false;  // the application's: leave it alone
    struct sigaction sa{};
    sa.sa_handler = &OnWakeSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the lock call must return EINTR
    return ::sigaction(WakeSignal(), &sa, nullptr) == 0;
  }();
  return installed;
}

timespec ToTimespec(SteadyClock::duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

// A timer that signals the calling thread at a deadline and every kRefire after it. Disarmed,
// drained and the signal mask restored by the destructor. Must be destroyed by the thread that
// armed it.
class ThreadAlarm {
 public:
  ThreadAlarm() = default;
  ThreadAlarm(const ThreadAlarm&) = delete;
  ThreadAlarm& operator=(const ThreadAlarm&) = delete;

  bool Arm(SteadyClock::time_point deadline) {
    if (!WakeSignalInstalled()) return false;
    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = WakeSignal();
    sev._sigev_un._tid = ::gettid();
    if (::timer_create(CLOCK_MONOTONIC, &sev, &timer_) != 0) return false;
    created_ = true;
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, WakeSignal());
    if (::pthread_sigmask(SIG_UNBLOCK, &wake, &old_mask_) != 0) return false;
    mask_changed_ = true;
    itimerspec spec{};
    spec.it_value = ToTimespec(std::max<SteadyClock::duration>(deadline - SteadyClock::now(),
                                                               std::chrono::microseconds(1)));
    spec.it_interval = ToTimespec(kRefire);
    return ::timer_settime(timer_, 0, &spec, nullptr) == 0;
  }

  ~ThreadAlarm() {
    if (created_) ::timer_delete(timer_);
    if (!mask_changed_) return;
    // Block the signal, take any delivery that is still pending, then restore the caller's mask.
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, WakeSignal());
    ::pthread_sigmask(SIG_BLOCK, &wake, nullptr);
    const timespec zero{};
    while (::sigtimedwait(&wake, nullptr, &zero) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }

 private:
  timer_t timer_{};
  bool created_ = false;
  bool mask_changed_ = false;
  sigset_t old_mask_{};
};

bool IsBusy(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EACCES; }

// The fallback when the wake-up signal is not ours to use (see above).
Result<bool> PollBefore(const LockAttempt& attempt, SteadyClock::time_point deadline,
                        const What& what) {
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    const auto now = SteadyClock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
    const int err = attempt(false);
    if (err == 0) return true;
    if (!IsBusy(err)) return FromErrno(err, what.str());
  }
}

}  // namespace

Result<bool> LockBefore(const LockAttempt& attempt, SteadyClock::time_point deadline,
                        const What& what) {
  int err = attempt(false);
  if (err == 0) return true;
  if (!IsBusy(err)) return FromErrno(err, what.str());
  if (SteadyClock::now() >= deadline) return false;
  ThreadAlarm alarm;
  if (!alarm.Arm(deadline)) return PollBefore(attempt, deadline, what);
  while (true) {
    err = attempt(true);
    if (err == 0) return true;
    if (err != EINTR) return FromErrno(err, what.str());
    if (SteadyClock::now() >= deadline) return false;
  }
}

Status LockShort(int fd, short type, off_t start, off_t length, const What& what,
                 SteadyClock::time_point deadline) {
  // The common case, a free lock, reads no clock.
  const int err = OfdLock(fd, type, start, length, /*block=*/false);
  if (err == 0) return OkStatus();
  if (!IsBusy(err)) return FromErrno(err, what.str());
  deadline = std::max(deadline, SteadyClock::now() + kShortLockTimeout);
  auto got = LockBefore([&](bool block) { return OfdLock(fd, type, start, length, block); },
                        deadline, what);
  if (!got.ok()) return got.status();
  if (!*got) {
    return UnavailableError(what.str() + ": still busy after " +
                            std::to_string(kShortLockTimeout.count()) +
                            "s (is a process stopped while holding it?)");
  }
  return OkStatus();
}

}  // namespace ordo::local
