// ordo/store.h — stores that make a lock safe to write under: FencedStore and VersionedStore.
//
// FencedStore keeps, per key, raw bytes and a *fence*: the highest fencing token it has accepted
// for that key (by a write or by a fenced read). It refuses a token below the fence with
// kStaleToken (Status::current() holds the fence), so a holder that was paused past its lease
// cannot overwrite what a newer holder wrote. An equal token is accepted: one holder may write
// many times.
//
// Read-modify-write needs more than fenced writes: an old holder can read, lose its lease, and
// write before the new holder has touched the key. Two ways close that gap:
//   - fenced reads: Read(key, token) registers the token like a write, so the new holder's read
//     already shuts the old holder out;
//   - strict mode: pass the lock name, and the store also refuses a token that is not a live
//     holder of that lock, checked atomically with the write (in the same SQL statement on the
//     database backends).
//
// VersionedStore is optimistic concurrency: each object has a version, and CompareAndSwap
// writes only if the version is still the one the caller read. Of N concurrent CAS calls from
// the same version exactly one wins.
//
// Fenced CAS (the "leader plus CAS" pattern): the overload with a token also keeps, per object,
// a fence of its own (the highest token a fenced CAS has written with). It refuses a token
// below the fence with kStaleToken *before* it looks at the version, so a deposed leader that
// read a fresh version still cannot move the state; with a lock name (strict mode) the token
// must also be a live holder of that lock (for an election, its term), checked atomically with
// the write. A plain CAS neither checks nor raises the fence.
//
// Keys follow the lock-name rule (ordo/names.h). Implementations are safe for concurrent use
// from many threads; on the shared backends also from many processes.
#ifndef ORDO_STORE_H_
#define ORDO_STORE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "ordo/status.h"

namespace ordo {

struct FencedValue {
  std::string data;
  std::uint64_t token = 0;    // the key's fence after this call
  std::uint64_t version = 0;  // bumps on every accepted write
};

struct FencedWrite {
  std::uint64_t token = 0;    // the token that was accepted (now the fence)
  std::uint64_t version = 0;  // the value's new version (1 for the first write)
};

// Checks a FencedStore call's arguments: a valid key, a token > 0 when `token_required` (Write)
// or when a lock name is given, a valid lock name if any. Every FencedStore calls it first, so
// bad input is kInvalidArgument with the same message on every backend and changes nothing.
Status ValidateFencedArgs(std::string_view key, std::uint64_t token, std::string_view lock_name,
                          bool token_required);

// Checks a CompareAndSwap call's arguments: a valid key and an expected version a store can
// hold (below 2^63); for the fenced overload (`fenced`), the token and lock name as
// ValidateFencedArgs does with a token required.
Status ValidateCasArgs(std::string_view key, std::uint64_t expected_version, bool fenced,
                       std::uint64_t token, std::string_view lock_name);

// The refusals every VersionedStore reports, worded alike on every backend.
Status StaleObjectToken(std::string_view key, std::uint64_t token, std::uint64_t fence);
Status ObjectVersionMismatch(std::string_view key, std::uint64_t current,
                             std::uint64_t expected);

class FencedStore {
 public:
  virtual ~FencedStore() = default;

  // Stores `data` under `key` if `token` >= the key's fence, and raises the fence to `token`.
  // With a non-empty `lock_name` (strict mode) the token must also be a live holder of that
  // lock. Errors: kStaleToken (current() = the fence; nothing written), kInvalidArgument (bad
  // key or lock name, token 0), kUnavailable.
  virtual Result<FencedWrite> Write(std::string_view key, std::string_view data,
                                    std::uint64_t token, std::string_view lock_name = {}) = 0;

  // Returns the value. With token > 0 (a fenced read) the token is checked and registered as
  // for Write, even when the key has no value yet (then kNotFound is returned after the fence
  // was raised). Errors: kNotFound, kStaleToken, kInvalidArgument, kUnavailable.
  virtual Result<FencedValue> Read(std::string_view key, std::uint64_t token = 0,
                                   std::string_view lock_name = {}) = 0;
};

struct Versioned {
  std::string value;
  std::uint64_t version = 0;  // >= 1 for an existing object
};

class VersionedStore {
 public:
  virtual ~VersionedStore() = default;

  // Errors: kNotFound, kInvalidArgument, kUnavailable.
  virtual Result<Versioned> Get(std::string_view key) = 0;

  // Writes `value` if the object's version is `expected_version` (0 = create only if absent)
  // and returns the new version. Errors: kVersionMismatch (current() = the current version, 0
  // when absent; nothing written), kInvalidArgument, kUnavailable.
  virtual Result<std::uint64_t> CompareAndSwap(std::string_view key,
                                               std::uint64_t expected_version,
                                               std::string_view value) = 0;

  // Fenced CAS: writes `value` only if `token` is not below the object's fence (which it then
  // raises to `token`) and, with a non-empty `lock_name`, is a live holder of that lock; and
  // only if the version is `expected_version`. The token is checked first.
  // Errors: kStaleToken (current() = the object's fence; nothing written), kVersionMismatch
  // (current() = the version; nothing written), kInvalidArgument (token 0, bad key or lock
  // name), kUnavailable.
  virtual Result<std::uint64_t> CompareAndSwap(std::string_view key,
                                               std::uint64_t expected_version,
                                               std::string_view value, std::uint64_t token,
                                               std::string_view lock_name = {}) = 0;
};

}  // namespace ordo

#endif  // ORDO_STORE_H_
