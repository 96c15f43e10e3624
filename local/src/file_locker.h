// The Locker behind flock:// and fcntl://. The two backends differ only in how the lock itself
// is taken on the lock file (MainLock); token counter, holder records, Describe/List and the
// stores are shared (lock_file.h, file_store.h).
//
// The Locker is safe for concurrent use from many threads (a mutex guards its table of held
// leases; file operations run outside it). Acquisitions made through it are released when it is
// destroyed.
#ifndef ORDO_LOCAL_FILE_LOCKER_H_
#define ORDO_LOCAL_FILE_LOCKER_H_

#include <memory>
#include <string_view>

#include "ordo/lock.h"
#include "ordo/registry.h"

namespace ordo::local {

// How a backend takes the lock itself on a lock file descriptor.
struct MainLock {
  std::string_view scheme;  // "flock", "fcntl"
  // One attempt (see LockAttempt in file_util.h): 0, EWOULDBLOCK/EAGAIN when busy and !block,
  // EINTR when a blocking attempt was interrupted, or another errno value.
  int (*lock)(int fd, LockMode mode, bool block);
  // Drops the lock for every descriptor of the open file description (so a forked child that
  // still shares it does not keep the lock after Release); nullptr when the whole-file OFD
  // unlock that follows it at every release covers the lock already (fcntl://).
  void (*unlock)(int fd);
  // Whether an exclusive lock itself is the OFD write lock on kLockByte (fcntl://), which lies
  // inside the fast admission range (lock_file.h), so that one call takes both.
  bool in_fast_range;
};

// Opens "<scheme>:///dir[?durable=0|1]". Errors: kInvalidArgument (host given, relative path,
// unknown query parameter or bad durable value, missing parent directory, not a directory, not
// writable).
Result<std::unique_ptr<Locker>> OpenFileLocker(const BackendUrl& url, const MainLock& main);

}  // namespace ordo::local

#endif  // ORDO_LOCAL_FILE_LOCKER_H_
