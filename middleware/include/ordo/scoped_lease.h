// ordo/scoped_lease.h — RAII ownership of a lease, with optional keep-alive.
//
// A ScopedLease releases its lease when destroyed (best effort: a failure is logged, never
// thrown). With keep_alive set, a background thread renews the lease every ttl/3. The lease is
// reported lost — through lost() and the on_lost callback, exactly once — when the backend says
// kLeaseLost, or when renewals keep failing for passing reasons (kUnavailable) until the
// self-fencing deadline: the last confirmed expiry minus a safety margin, measured on this
// process's monotonic clock. After loss, stop writing: the lock may already be someone else's.
//
// Thread safety: lost(), lease() and token() may be called from any thread. The other members are not to be called
// concurrently with each other. The callback runs on the keep-alive thread; it must not destroy
// the ScopedLease.
// Move-only. The Locker must outlive the ScopedLease.
#ifndef ORDO_SCOPED_LEASE_H_
#define ORDO_SCOPED_LEASE_H_

#include <chrono>
#include <functional>
#include <memory>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo {

struct ScopedLeaseOptions {
  // Renew in the background at renew_every (ttl/3 by default).
  bool keep_alive = false;
  // Called once, on the keep-alive thread, when the lease is lost; `why` says how.
  std::function<void(const Status& why)> on_lost;
  // Renewal period; zero means ttl/3.
  std::chrono::milliseconds renew_every{0};
};

class ScopedLease {
 public:
  using Options = ScopedLeaseOptions;

  // Acquires `request` and wraps the lease. Errors as Locker::Acquire.
  static Result<ScopedLease> Acquire(Locker& locker, const LockRequest& request,
                                     Options options = {});
  // Takes ownership of an acquired lease.
  ScopedLease(Locker& locker, Lease lease, Options options = {});

  ScopedLease(ScopedLease&& other) noexcept;
  ScopedLease& operator=(ScopedLease&& other) noexcept;
  ScopedLease(const ScopedLease&) = delete;
  ScopedLease& operator=(const ScopedLease&) = delete;
  ~ScopedLease();

  // The lease as last renewed (a copy: keep-alive may update it concurrently).
  // REQUIRES: not moved from.
  Lease lease() const;
  std::uint64_t token() const;

  // True once the lease is known lost (keep-alive only).
  bool lost() const;

  // Stops keep-alive and releases now. kLeaseLost if it was lost. Idempotent: later calls and
  // the destructor do nothing.
  Status Release();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ordo

#endif  // ORDO_SCOPED_LEASE_H_
