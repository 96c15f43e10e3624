// flock:///dir — one lock file per name in dir, locked with flock(2) (LOCK_SH / LOCK_EX).
//
// flock(2) locks belong to the open file description: every acquisition opens the file anew,
// so two acquisitions exclude each other even within one process, and the kernel frees the lock
// when the last descriptor of that description is closed — at Release, or when the process
// dies, however it dies. There is no TTL (LockerTraits::expires_by_ttl is false).
//
// Token counter, holder records and the stores are shared with fcntl:// (lock_file.h,
// file_store.h). Where flock and fcntl differ is explained in fcntl_locker.cc.
#include <sys/file.h>

#include <cerrno>

#include "file_locker.h"

namespace ordo::local {
namespace {

int FlockLock(int fd, LockMode mode, bool block) {
  const int op = (mode == LockMode::kShared ? LOCK_SH : LOCK_EX) | (block ? 0 : LOCK_NB);
  return ::flock(fd, op) == 0 ? 0 : errno;
}

void FlockUnlock(int fd) { ::flock(fd, LOCK_UN); }

constexpr MainLock kFlock{"flock", &FlockLock, &FlockUnlock, /*in_fast_range=*/false};

Result<std::unique_ptr<Locker>> OpenFlock(const BackendUrl& url) {
  return OpenFileLocker(url, kFlock);
}

const bool kRegistered = RegisterBackend("flock", &OpenFlock);

}  // namespace
}  // namespace ordo::local
