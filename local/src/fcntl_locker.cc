// fcntl:///dir — one lock file per name in dir, locked with open-file-description (OFD) record
// locks: F_OFD_SETLK / F_OFD_SETLKW, a read lock for shared, a write lock for exclusive, on one
// byte of the file (kLockByte in lock_file.h, distinct from the token-counter guard's bytes).
//
// Why OFD locks and not classic POSIX locks (F_SETLK): classic locks belong to the *process*.
// Closing ANY descriptor of the file — a Describe, a library that opens the same path — drops
// every lock the process holds on it, and two threads (or two Lockers) of one process never
// exclude each other; LevelDB keeps a lock table of its own for exactly that reason. OFD locks
// belong to the open file description, like flock(2), so each acquisition (its own open())
// excludes every other one, and only closing *its* descriptor releases it.
//
// Where flock:// and fcntl:// differ:
//   - fork: both kinds of lock are shared by a child that inherits the descriptor (our
//     descriptors are close-on-exec, so not across exec); classic POSIX locks would not be
//     inherited at all. Release unlocks explicitly, so a forked child does not keep the lock.
//   - closing another descriptor of the same file: releases classic POSIX locks, never flock or
//     OFD locks.
//   - NFS: flock(2) is emulated there with whole-file byte-range locks (since Linux 2.6.12), so
//     it would conflict with the guard and holder-record locks both backends also take; OFD
//     locks go through NLM, which loses locks when a client or server reboots and needs lockd.
//     Neither backend is meant for network file systems: use sqlite:// on a local disk or
//     postgresql:// to coordinate hosts.
//   - byte ranges: only fcntl locks cover ranges, which is what RangeLock (ordo_local/range_lock.h)
//     offers for records of one shared file.
#include <fcntl.h>

#include "file_locker.h"
#include "file_util.h"
#include "lock_file.h"

namespace ordo::local {
namespace {

int OfdLockByte(int fd, LockMode mode, bool block) {
  return OfdLock(fd, mode == LockMode::kShared ? F_RDLCK : F_WRLCK, kLockByte, 1, block);
}

// No unlock of its own: the whole-file OFD unlock every release makes covers the lock byte.
constexpr MainLock kFcntl{"fcntl", &OfdLockByte, nullptr, /*in_fast_range=*/true};

Result<std::unique_ptr<Locker>> OpenFcntl(const BackendUrl& url) {
  return OpenFileLocker(url, kFcntl);
}

const bool kRegistered = RegisterBackend("fcntl", &OpenFcntl);

}  // namespace
}  // namespace ordo::local
