// The lock file shared by flock:// and fcntl://: one regular file per lock name holding the
// name's token counter and one record per live holder, so that any process can tell the last
// token and the holders.
//
// Layout (all integers little-endian) and the OFD byte-range locks that protect it:
//
//   bytes            content                              OFD lock on those bytes
//   [0, 8)           token counter: the last token issued  the *guard*: exclusive while the
//                                                          counter is bumped or a holder record
//                                                          is claimed or cleared; shared while
//                                                          records are read
//   [8, 9)           —                                     fcntl:// only: the lock itself
//                                                          (read lock = shared, write = exclusive)
//   [9, 10)          —                                     read-locked by every live permit
//                                                          (limit > 1), so a plain acquisition
//                                                          tells in one F_OFD_GETLK that none is
//                                                          live
//   [8, 4097)        zeros, then slot 0's first byte       write-locked, while it holds, by a
//                                                          holder admitted the fast way (below):
//                                                          all of it under fcntl://, [4096,
//                                                          4097) only under flock://
//   [4096 + 512*i,   holder record i (see lock_file.cc)    on its first byte: held by the
//    +512)                                                 holder's own descriptor for as long as
//                                                          the holder lives
//
// Semaphores (limit > 1): a permit is a holder record alone, with no lock itself. Its record
// carries its limit, and its record index is its semaphore slot. Every holder, plain or permit,
// is admitted under the exclusive guard after reading the live records, so the live records
// never mix limits and never number more than their limit; the lowest free record index of
// fewer than `limit` permits is below `limit`.
//
// flock:// takes the lock itself with flock(2) on the whole file; flock(2) and OFD record locks
// do not interact on Linux local file systems, so the guard and record locks work the same way
// under both backends.
//
// The fast admission of a plain exclusive holder: one OFD write lock on [0, kFastRangeLength)
// takes the guard, proves that no permit is live (the permits byte) and no holder uses slot 0,
// and claims slot 0 — and, under fcntl://, takes the lock itself (kLockByte) too. If it is
// refused (any of those bytes busy) the holder is admitted the long way (Register in
// file_locker.cc). The holder then writes the counter and its record in one write
// (IssueTokenToSlotZero) and unlocks only the guard: the rest of the range stays locked by the
// holder until it releases. Nothing but those three locks is ever taken in [10, 4096), and no
// one probes those bytes, so holding them changes nothing for anyone else.
//
// Liveness: a holder record counts only while its first byte is locked. That lock belongs to
// the holder's descriptor, so the kernel drops it when the holder releases, closes, or dies —
// even by SIGKILL — and a record left behind by a dead process is recognised as dead without
// any cleanup. Release therefore leaves its record in place (one write fewer per pair); the next
// holder of the slot overwrites it.
//
// The functions keep no state and are thread-safe; callers serialise through the guard.
#ifndef ORDO_LOCAL_LOCK_FILE_H_
#define ORDO_LOCAL_LOCK_FILE_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "file_util.h"
#include "ordo/lock.h"

namespace ordo::local {

inline constexpr off_t kGuardStart = 0;
inline constexpr off_t kGuardLength = 8;
inline constexpr off_t kLockByte = 8;
inline constexpr off_t kPermitsByte = 9;
inline constexpr off_t kSlotBase = 4096;
inline constexpr off_t kSlotSize = 512;
inline constexpr off_t kFastRangeLength = kSlotBase + 1;

struct HolderRecord {
  std::uint64_t token = 0;
  LockMode mode = LockMode::kExclusive;
  std::string owner;
  std::chrono::system_clock::time_point expires_at;
  // The semaphore limit the holder acquired with (1: a plain lock). Records written before
  // semaphores existed have 0 there, read as 1.
  std::uint32_t limit = 1;
  // The record's slot index; filled in by LiveHolders (not stored). A permit's semaphore slot.
  std::uint32_t slot = 0;
};

// The counter. REQUIRES: the guard held (shared is enough to read).
Result<std::uint64_t> ReadCounter(int fd, std::string_view name);

// Bumps the counter and returns the new token; with `durable` the file data is on disk before
// this returns. REQUIRES: the guard held exclusively, through `fd`.
Result<std::uint64_t> IssueToken(int fd, std::string_view name, bool durable);

// IssueToken followed by writing `record` (its token set to the new one) to slot 0, in one
// write that covers the counter, the unused bytes up to the first slot (zeros, which they always
// are) and the record. The counter is the first byte written, so a holder killed in the middle
// has burned a token, never reissued one. REQUIRES: the guard held exclusively and slot 0's
// liveness byte locked, both through `fd`.
Result<std::uint64_t> IssueTokenToSlotZero(int fd, std::string_view name, bool durable,
                                           HolderRecord* record);

// Finds the lowest slot no live holder uses, locks its liveness byte through `fd` (for as long as `fd`
// stays open) and writes `record` there. REQUIRES: the guard held exclusively, through `fd`.
Result<std::uint32_t> ClaimSlot(int fd, std::string_view name, const HolderRecord& record);

// Overwrites the record in `slot` (Renew). REQUIRES: the guard held exclusively, and `fd` the
// descriptor that claimed the slot.
Status WriteSlot(int fd, std::string_view name, std::uint32_t slot, const HolderRecord& record);

// The records whose liveness byte is locked by another open file description: the live holders
// (sorted by token). REQUIRES: the guard held (shared is enough).
Result<std::vector<HolderRecord>> LiveHolders(int fd, std::string_view name);

}  // namespace ordo::local

#endif  // ORDO_LOCAL_LOCK_FILE_H_
