// Helpers shared by the file backends (flock://, fcntl://), their stores and RangeLock: owned
// descriptors, the one errno -> Status conversion, safe opening inside a lock directory,
// open-file-description (OFD) byte-range locks, and waiting for a lock until a deadline without
// spinning.
//
// All functions are thread-safe; none keeps state except the process-wide wake-up signal
// handler (see LockBefore).
#ifndef ORDO_LOCAL_FILE_UTIL_H_
#define ORDO_LOCAL_FILE_UTIL_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ordo/status.h"

namespace ordo::local {

using SteadyClock = std::chrono::steady_clock;

// How long a short internal lock (a token-counter guard, a store key) may be waited for before
// the call gives up with kUnavailable. Such locks are held for a few system calls; waiting this
// long means their holder is stopped (SIGSTOP, a debugger) in the middle of one.
inline constexpr std::chrono::seconds kShortLockTimeout{10};

// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.Release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset();

 private:
  int fd_ = -1;
};

// What a call was doing to what, for its error message ("read of lock file '/d/x'"): up to six
// pieces kept as views and joined only when an error needs them, so that the success path of
// an acquisition builds no strings. REQUIRES: the pieces outlive the call it is passed to.
class What {
 public:
  What(std::string_view s) : parts_{s}, count_(1) {}         // NOLINT(google-explicit-constructor)
  What(const std::string& s) : What(std::string_view(s)) {}  // NOLINT(google-explicit-constructor)
  What(const char* s) : What(std::string_view(s)) {}         // NOLINT(google-explicit-constructor)
  template <typename... Parts>
    requires(sizeof...(Parts) >= 2 && sizeof...(Parts) <= 6)
  explicit What(const Parts&... parts)
      : parts_{std::string_view(parts)...}, count_(sizeof...(Parts)) {}

  std::string str() const;

 private:
  std::array<std::string_view, 6> parts_;
  std::size_t count_;
};

// THE place where an errno value becomes a Status. `context` says what was being done to what
// ("open lock file '/d/x'"). ENOENT -> kNotFound; errors that mean the input names something
// unusable (EACCES, EPERM, EROFS, ENOTDIR, ELOOP, …) -> kInvalidArgument; resource and I/O
// trouble (EIO, ENOSPC, EMFILE, ENOLCK, …) -> kUnavailable; anything else -> kInternal.
Status FromErrno(int err, std::string_view context);

// Opens (creating with mode 0700 if missing) the directory `path`. Its parent must exist. Errors
// (all kInvalidArgument, naming the path): empty or relative path, missing parent, not a
// directory, not writable and searchable by this process, on a network file system (see
// file_system.h).
Result<UniqueFd> OpenLockDirectory(const std::string& path);

// Opens (creating with mode 0700 if missing) the subdirectory `name` of `dirfd`, refusing a
// symbolic link.
Result<UniqueFd> OpenSubdirectory(int dirfd, std::string_view name, std::string_view dir_path);

// openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600), retried on EINTR; returns the errno
// on failure (-errno) so callers can tell ENOENT apart. `name` is a validated single component.
int OpenAt(int dirfd, std::string_view name, int flags);

// pread/pwrite until done. ReadAt stores the byte count read (short at end of file).
Status ReadAt(int fd, void* buf, std::size_t len, off_t offset, std::size_t* got,
              const What& what);
Status WriteAt(int fd, const void* buf, std::size_t len, off_t offset, const What& what);
// pwritev until done: the `count` pieces of `parts` written back to back from `offset`. Adjusts
// `parts` as it goes.
Status WriteVAt(int fd, iovec* parts, int count, off_t offset, const What& what);

void EncodeU64(std::uint64_t value, unsigned char* out);  // little-endian
std::uint64_t DecodeU64(const unsigned char* in);

// One attempt at an OFD record lock (F_OFD_SETLK, or F_OFD_SETLKW when `block`). `type` is
// F_RDLCK, F_WRLCK or F_UNLCK; length 0 means "to the end of the file and beyond". Returns 0 or
// the errno value (EAGAIN when busy, EINTR when a signal interrupted a blocking attempt).
int OfdLock(int fd, short type, off_t start, off_t length, bool block);

// Whether another open file description holds a lock on [start, start+length) that would
// conflict with a write lock (F_OFD_GETLK). Errors: as FromErrno.
Result<bool> OfdRangeHeldByOther(int fd, off_t start, off_t length, const What& what);

// One attempt to take a lock: block == false must not block and returns 0, EAGAIN/EWOULDBLOCK
// (busy) or another errno; block == true may block and returns 0, EINTR (interrupted) or another
// errno. A non-owning reference to a callable (no allocation per attempt): pass a lambda
// straight to the call that takes it.
class LockAttempt {
 public:
  template <typename F>
  LockAttempt(const F& f)  // NOLINT(google-explicit-constructor)
      : object_(&f), call_([](const void* o, bool block) {
          return (*static_cast<const F*>(o))(block);
        }) {}
  int operator()(bool block) const { return call_(object_, block); }

 private:
  const void* object_;
  int (*call_)(const void*, bool);
};

// Takes a lock through `attempt`, waiting until `deadline` at most. Returns true when acquired,
// false when the deadline passed first; other errors through FromErrno(…, what). The wait blocks
// in the kernel (see the comment in file_util.cc); it does not poll.
Result<bool> LockBefore(const LockAttempt& attempt, SteadyClock::time_point deadline,
                        const What& what);

// Takes a short internal OFD lock on [start, start+length): kUnavailable when it could not be
// had within kShortLockTimeout (or by `deadline`, whichever is later).
Status LockShort(int fd, short type, off_t start, off_t length, const What& what,
                 SteadyClock::time_point deadline = SteadyClock::time_point::min());

}  // namespace ordo::local

#endif  // ORDO_LOCAL_FILE_UTIL_H_
