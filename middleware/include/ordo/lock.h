// ordo/lock.h — the uniform lock API: LockRequest, Lease, LockState and the Locker interface.
//
// Every backend (inproc:, flock://, fcntl://, sqlite://, postgresql://, http://) implements
// Locker with the same semantics, proven by one conformance suite (tests/conformance).
//
// The lease lifecycle. A lock name is *free* until acquired; each acquisition creates a holder
// with its own fencing token. What each call does in each state of that holder:
//
//   state of the holder   Acquire (other caller)     Renew(lease)        Release(lease)   fenced write with its token
//   held (live)           exclusive: kLockHeld;      extends expiry,     frees it, wakes  accepted unless a larger
//                         shared+shared: granted     same token          waiters; kOk     token was seen for the key
//   expired (TTL passed,  granted with a larger      kLeaseLost          kLeaseLost       plain: accepted until a
//   lease backends only)  token                                                           larger token is seen;
//                                                                                         strict: kStaleToken
//   released / taken      granted with a larger      kLeaseLost          kLeaseLost       as for expired
//   over                  token
//
// Lease backends (inproc:, sqlite://, postgresql:// cas and version, http:// over those) expire
// a holder when its TTL passes, judged by the backend's own clock. fd- and connection-bound
// backends (flock://, fcntl://, postgresql://?strategy=for-update) never expire a live holder:
// `ttl` is reported and Renew extends the reported expiry, but only Release or the holder's
// death (process exit, closed descriptor, dropped connection) frees the lock. That is stronger
// than a lease. See traits().
//
// Tokens: per lock name, every successful acquisition (shared ones included) gets a token larger
// than every token issued before it for that name, across crashes and restarts. 0 is never
// issued. Locks are not re-entrant: a second exclusive Acquire of a held name fails with
// kLockHeld even from the same thread, Locker or owner.
//
// What a lease cannot promise: a holder paused past its TTL (GC, SIGSTOP, a slow disk) does not
// know it lost the lock and may still write. Only a store that checks the fencing token
// (FencedStore, or your own store comparing tokens) refuses that write.
#ifndef ORDO_LOCK_H_
#define ORDO_LOCK_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ordo/status.h"

namespace ordo {

class FencedStore;
class VersionedStore;

enum class LockMode { kExclusive, kShared };

// "exclusive" / "shared".
std::string_view LockModeName(LockMode mode);

inline constexpr std::chrono::milliseconds kDefaultTtl{30'000};
inline constexpr std::chrono::milliseconds kMinTtl{100};
inline constexpr std::chrono::milliseconds kMaxTtl{24 * 3600 * 1000};
inline constexpr std::chrono::milliseconds kMaxWait{24 * 3600 * 1000};
inline constexpr std::size_t kMaxOwnerLength = 256;
// The largest semaphore limit (LockRequest::limit).
inline constexpr std::uint32_t kMaxLimit = 10'000;

struct LockRequest {
  std::string name;                                // see ValidateName (ordo/names.h)
  LockMode mode = LockMode::kExclusive;
  std::chrono::milliseconds ttl = kDefaultTtl;     // 100 ms .. 24 h
  std::chrono::milliseconds wait{0};               // 0 = try once; up to 24 h
  std::string owner;                               // empty: a fresh "host:pid:random" per acquisition
  // Semaphore limit: up to `limit` exclusive holders at once, each with its own token and slot.
  // 1 (the default) is a plain lock; at most kMaxLimit; > 1 requires kExclusive. A request
  // whose limit differs from the live holders' is kInvalidArgument and changes nothing.
  std::uint32_t limit = 1;
};

struct Lease {
  std::string name;
  std::string owner;
  std::uint64_t token = 0;  // fencing token, > 0
  LockMode mode = LockMode::kExclusive;
  // When the backend will consider the lease expired, by the backend's clock. Informational:
  // decide nothing on the client's clock; renew at ttl/3 (ScopedLease does).
  std::chrono::system_clock::time_point expires_at;
  std::chrono::milliseconds ttl = kDefaultTtl;
  // The semaphore slot this holder occupies: the lowest free one in 0 .. limit-1 when it was
  // acquired; 0 for a plain lock.
  std::uint32_t slot = 0;
};

struct Holder {
  std::string owner;
  std::uint64_t token = 0;
  LockMode mode = LockMode::kExclusive;
  std::chrono::system_clock::time_point expires_at;
  std::uint32_t slot = 0;
};

struct LockState {
  std::string name;
  std::vector<Holder> holders;  // live holders; empty when free
  std::uint64_t last_token = 0;  // the largest token ever issued for the name
  std::uint32_t limit = 1;       // the live holders' limit; 1 when free
};

// A registration made by Locker::Watch. Destroying it unsubscribes: after the destructor
// returns, the callback is not running and will not be called again.
class Subscription {
 public:
  virtual ~Subscription() = default;
};

// What a backend's locks are bound to.
struct LockerTraits {
  // True for lease backends: a holder that stops renewing loses the lock after its TTL.
  // False for fd/connection-bound backends: the lock lives until release or the holder's death.
  bool expires_by_ttl = true;
  // True when processes other than this one see the same locks (everything but inproc:).
  bool shared_across_processes = true;
  // 0 when every change, by any process, is notified (waiters and Watch never poll). Otherwise
  // the bounded period at which waiters re-check, and Watch callers must re-check, because
  // changes made by other processes are not notified: sqlite:// (SQLite has no cross-process
  // notification; releases inside the process are notified at once).
  std::chrono::milliseconds recheck{0};
};

// A Locker is one open backend. Implementations are safe for concurrent use from many threads.
// Calls block for at most the request's wait plus the backend's own timeouts (connect,
// statement, busy); none spin.
class Locker {
 public:
  virtual ~Locker() = default;
  Locker(const Locker&) = delete;
  Locker& operator=(const Locker&) = delete;

  // Takes the lock, waiting up to request.wait for it (woken by releases, never by polling
  // everyone).
  // Errors: kLockHeld (held, and the wait elapsed), kInvalidArgument (bad name, ttl, wait or
  // owner; nothing changed), kUnavailable (backend down: nothing may be assumed held).
  virtual Result<Lease> Acquire(const LockRequest& request) = 0;

  // Extends a live lease to `ttl` from now (backend clock). Uses lease.name and lease.token.
  // Errors: kLeaseLost (expired, released or taken over), kInvalidArgument, kUnavailable
  // (unknown: retry until your own deadline; ScopedLease does).
  virtual Result<Lease> Renew(const Lease& lease, std::chrono::milliseconds ttl) = 0;

  // Frees the lock held by lease.token. Errors: kLeaseLost (already released, expired or taken
  // over — the lock was not yours to release), kInvalidArgument, kUnavailable.
  virtual Status Release(const Lease& lease) = 0;

  // The live holders and last token of one lock. kNotFound if never acquired.
  virtual Result<LockState> Describe(std::string_view name) = 0;

  // Locks whose names start with `prefix` (sorted by name), at most `limit` of them.
  virtual Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) = 0;

  // Checks that the backend answers. kUnavailable when it does not.
  virtual Status Ping() = 0;

  virtual LockerTraits traits() const = 0;

  // Asks to be told when lock `name` may have changed hands, so that a caller can wait without
  // a thread or a connection of its own: `changed` is called on a backend thread, must not
  // block and must not call into this Locker, and may be called spuriously. Signalled: every
  // release (inproc:, sqlite:// in this process, postgresql:// through NOTIFY), and
  // acquisitions on the in-process sources (inproc:, sqlite://). Not signalled: expiry by TTL
  // and a for-update holder's dropped connection (wait for the first holder's expires_at as
  // well), and on sqlite:// other processes' changes (re-check every traits().recheck).
  // Returns nullptr when the backend has no notification source (flock://, fcntl://, http://);
  // the caller must then re-check on a bounded period of its own. The Subscription must not
  // outlive this Locker.
  virtual std::unique_ptr<Subscription> Watch(std::string_view name,
                                              std::function<void()> changed);

  // The stores that share this backend's storage. They live as long as this Locker. Strict-mode
  // fenced operations consult this Locker's lock table.
  virtual FencedStore& fenced() = 0;
  virtual VersionedStore& objects() = 0;

 protected:
  Locker() = default;
};

// Checks every field of a request (name, ttl, wait, owner, limit). Backends call it first.
Status ValidateRequest(const LockRequest& request);
// Checks a renewal ttl.
Status ValidateTtl(std::chrono::milliseconds ttl);
// A fresh owner id "host:pid:random".
std::string DefaultOwner();

}  // namespace ordo

#endif  // ORDO_LOCK_H_
