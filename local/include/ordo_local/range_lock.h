// ordo_local/range_lock.h — locking byte ranges (records) of one shared file across processes.
//
// Part of the local layer (it is fcntl, not a backend of the Locker API), so it is not in the
// umbrella ordo/ordo.h: include <ordo_local/range_lock.h> where you use it.
//
//   auto rec = ordo::RangeLock::Lock("/var/lib/app/table.dat", 4096 * 7, 4096,
//                                    ordo::LockMode::kExclusive, std::chrono::seconds(5));
//   if (rec.ok()) { pwrite(rec->fd(), …, 4096 * 7); }   // unlocked when `rec` goes away
//
// Implemented with open-file-description record locks (F_OFD_SETLK / F_OFD_SETLKW): each
// RangeLock opens the file itself, so two RangeLocks exclude each other whether they live in
// two processes, two threads or the same thread; closing some other descriptor of the file does
// not release them (unlike classic POSIX locks); process death releases them. Ranges that do not
// overlap never conflict; shared ranges coexist. Waits block in the kernel until the range is
// free or the wait elapses; they do not poll. Advisory, like every fcntl lock: only processes
// that lock the range are excluded. Not for network file systems.
//
// There are no fencing tokens here: this is the OS's lock, bound to the descriptor, not a lease.
//
// Thread safety: a RangeLock is a move-only value; distinct objects may be used from distinct
// threads, one object from one thread at a time.
#ifndef ORDO_LOCAL_RANGE_LOCK_H_
#define ORDO_LOCAL_RANGE_LOCK_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo {

class RangeLock {
 public:
  // Locks [offset, offset + length) of the file at `path` (created with mode 0600 if missing;
  // its directory must exist), waiting up to `wait` (0 = try once). length 0 means "from offset
  // to the end of the file, however far it grows". An exclusive lock needs the file writable, a
  // shared one readable. The descriptor is close-on-exec.
  // Errors: kLockHeld (a conflicting lock is held and the wait elapsed), kInvalidArgument
  // (empty path, range beyond 2^63, negative or too long wait, a path that cannot be opened:
  // missing directory, permission, not a regular file), kUnavailable (out of descriptors or
  // lock records).
  static Result<RangeLock> Lock(std::string_view path, std::uint64_t offset,
                                std::uint64_t length, LockMode mode,
                                std::chrono::milliseconds wait = std::chrono::milliseconds(0));

  RangeLock(RangeLock&& other) noexcept;
  RangeLock& operator=(RangeLock&& other) noexcept;
  RangeLock(const RangeLock&) = delete;
  RangeLock& operator=(const RangeLock&) = delete;
  ~RangeLock();  // unlocks

  // Unlocks and closes now. Idempotent.
  void Unlock();

  bool locked() const { return fd_ >= 0; }
  // The descriptor holding the lock, for reading/writing the record (pread/pwrite). -1 after
  // Unlock. Do not close it: that releases the lock.
  int fd() const { return fd_; }
  std::uint64_t offset() const { return offset_; }
  std::uint64_t length() const { return length_; }
  LockMode mode() const { return mode_; }

 private:
  RangeLock(int fd, std::uint64_t offset, std::uint64_t length, LockMode mode)
      : fd_(fd), offset_(offset), length_(length), mode_(mode) {}

  int fd_ = -1;
  std::uint64_t offset_ = 0;
  std::uint64_t length_ = 0;
  LockMode mode_ = LockMode::kExclusive;
};

}  // namespace ordo

#endif  // ORDO_LOCAL_RANGE_LOCK_H_
