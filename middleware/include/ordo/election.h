// ordo/election.h — leader election over any Locker, whose term is the fencing token.
//
// The election named X is the exclusive lock X: the leader is its holder, the candidate's
// published value (1–256 bytes, e.g. "host-a:8080") is the holder's owner, and the **term** is
// the holder's fencing token. Terms therefore only grow, across crashes and restarts, and a
// deposed leader's writes are refused by every store that checks the term: FencedStore, or
// VersionedStore::CompareAndSwap / StateMachine::Transition with the term as token and X as the
// lock name (strict mode: the term must be the live leader's).
//
//   ordo::Election election(*locker, "scheduler");
//   auto leadership = election.Campaign({.candidate = "host-a:8080", .wait = 1min});
//   if (leadership.ok()) {
//     // lead; every state change is machine.Transition(key, from, to, leadership->token(),
//     // "scheduler"); stop as soon as leadership->lost()
//     election.Resign(*leadership).IgnoreError();
//   }
//
// Observe(after_term, wait) returns as soon as the leader's term differs from after_term (no
// leader counts as term 0) or the wait elapses. It sleeps on the backend's own notifications
// (Locker::Watch) and on the current leader's expiry; it re-checks on a bounded period only
// where the backend cannot notify: Watch returns nullptr (flock://, fcntl://, http://: every
// kNoWatchRecheck), traits().recheck > 0 (sqlite:// across processes: every recheck), and a
// connection-bound holder's death, which no notification reports (postgresql:// for-update:
// every kUnnotifiedDeathRecheck).
//
// Thread safety: an Election is a light handle (a Locker reference and a name); all its members
// may be called concurrently from many threads. Campaign blocks up to its wait, Observe up to
// its wait, Leader and Resign for one backend round trip. The Locker must outlive the Election
// and every ScopedLease it returned.
#ifndef ORDO_ELECTION_H_
#define ORDO_ELECTION_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ordo/lock.h"
#include "ordo/scoped_lease.h"
#include "ordo/status.h"

namespace ordo {

// The period at which Observe re-checks on a backend whose Watch returns nullptr.
inline constexpr std::chrono::milliseconds kNoWatchRecheck{100};
// The period at which Observe re-checks on a backend whose holders do not expire by TTL
// (a dead holder's lock is freed by the kernel or the database, and not every such release is
// notified).
inline constexpr std::chrono::milliseconds kUnnotifiedDeathRecheck{1000};

struct LeaderInfo {
  std::string candidate;  // the leader's published value (the holder's owner)
  std::uint64_t term = 0;  // its fencing token, > 0
  // When the leader's lease runs out unless renewed, by the backend's clock.
  std::chrono::system_clock::time_point expires_at;
};

struct ElectionState {
  std::string name;
  std::optional<LeaderInfo> leader;  // empty: nobody leads now
  std::uint64_t last_term = 0;   // the largest term ever issued for the election (0: never)
  // The current term; 0 when nobody leads.
  std::uint64_t term() const { return leader ? leader->term : 0; }
};

struct CampaignRequest {
  std::string candidate;                            // 1–256 bytes, published as the owner
  std::chrono::milliseconds ttl = kDefaultTtl;      // the leader's lease, renewed by ScopedLease
  std::chrono::milliseconds wait{0};                // 0 = try once; up to kMaxWait
  // Keep-alive and the loss signal of the leadership (on_lost, fence_early). Keep-alive is on
  // by default: a leader that stops renewing is deposed after its TTL.
  ScopedLeaseOptions lease{.keep_alive = true};
};

class Election {
 public:
  // `name` is checked by each call (ValidateName), not here.
  Election(Locker& locker, std::string name);

  const std::string& name() const { return name_; }

  // Waits up to request.wait to become the leader. The returned ScopedLease is the leadership:
  // token() is the term; lost() and on_lost report its loss; destroying it resigns.
  // Errors: kLockHeld (another candidate leads and the wait elapsed; the message names it),
  // kInvalidArgument (bad name, candidate, ttl or wait: nothing changed), kUnavailable.
  Result<ScopedLease> Campaign(const CampaignRequest& request);

  // Gives leadership up at once, so that a waiting candidate takes over. kLeaseLost if it was
  // already lost (deposed): nothing was yours to give up.
  Status Resign(ScopedLease& leadership);

  // The current leader and the last term. kNotFound if nobody ever campaigned successfully
  // (the lock was never acquired); kInvalidArgument for a bad name; kUnavailable.
  Result<ElectionState> Leader();

  // Returns as soon as the term differs from `after_term` (no leader = term 0), or when `wait`
  // elapses, with the state then (never kNotFound: a never-held election is term 0). Errors:
  // kInvalidArgument (bad name, wait above kMaxWait), kUnavailable.
  Result<ElectionState> Observe(std::uint64_t after_term, std::chrono::milliseconds wait);

 private:
  Locker& locker_;
  std::string name_;
};

// Checks a candidate value: 1–256 bytes.
Status ValidateCandidate(std::string_view candidate);

}  // namespace ordo

#endif  // ORDO_ELECTION_H_
