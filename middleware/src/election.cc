#include "ordo/election.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

#include "ordo/names.h"

namespace ordo {

Status ValidateCandidate(std::string_view candidate) {
  if (candidate.empty() || candidate.size() > kMaxOwnerLength) {
    return InvalidArgumentError("candidate is " + std::to_string(candidate.size()) +
                                " bytes long; it must be 1 to " +
                                std::to_string(kMaxOwnerLength) + " bytes");
  }
  return OkStatus();
}

Election::Election(Locker& locker, std::string name) : locker_(locker), name_(std::move(name)) {}

Result<ScopedLease> Election::Campaign(const CampaignRequest& request) {
  ORDO_RETURN_IF_ERROR(ValidateName(name_, "election name"));
  ORDO_RETURN_IF_ERROR(ValidateCandidate(request.candidate));
  auto leadership = ScopedLease::Acquire(locker_,
                                         {.name = name_,
                                          .mode = LockMode::kExclusive,
                                          .ttl = request.ttl,
                                          .wait = request.wait,
                                          .owner = request.candidate},
                                         request.lease);
  if (leadership.ok() || leadership.status().code() != StatusCode::kLockHeld) return leadership;
  // Name the leader whatever the backend's kLockHeld message says (some cannot name holders).
  auto state = Leader();
  if (!state.ok() || !state->leader) return leadership.status();
  return LockHeldError("election '" + name_ + "' is led by '" + state->leader->candidate +
                       "' (term " + std::to_string(state->leader->term) + ")");
}

Status Election::Resign(ScopedLease& leadership) { return leadership.Release(); }

Result<ElectionState> Election::Leader() {
  ORDO_RETURN_IF_ERROR(ValidateName(name_, "election name"));
  auto described = locker_.Describe(name_);
  if (!described.ok()) return described.status();
  ElectionState state{.name = name_, .last_term = described->last_token};
  // The leader is the exclusive holder; a shared holder of the same name is nobody's leadership.
  for (const Holder& holder : described->holders) {
    if (holder.mode != LockMode::kExclusive) continue;
    state.leader = LeaderInfo{
        .candidate = holder.owner, .term = holder.token, .expires_at = holder.expires_at};
    break;
  }
  return state;
}

namespace {

// What a Watch callback signals to one Observe call. Shared with the callback, which may run on
// a backend thread until the Subscription is destroyed.
struct ChangeFlag {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t changes = 0;  // guarded by mu
};

}  // namespace

Result<ElectionState> Election::Observe(std::uint64_t after_term, std::chrono::milliseconds wait) {
  ORDO_RETURN_IF_ERROR(ValidateName(name_, "election name"));
  if (wait.count() < 0 || wait > kMaxWait) {
    return InvalidArgumentError("wait " + std::to_string(wait.count()) +
                                "ms is out of range: it must be 0 to 24h");
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  auto flag = std::make_shared<ChangeFlag>();
  // Subscribed before the first look, so that a change between the look and the sleep ends
  // the sleep at once.
  std::unique_ptr<Subscription> subscription = locker_.Watch(name_, [flag] {
    std::lock_guard<std::mutex> lock(flag->mu);
    ++flag->changes;
    flag->cv.notify_all();
  });
  const LockerTraits traits = locker_.traits();
  // The bounded re-check, only where some change is not notified (see the header).
  std::chrono::milliseconds recheck{0};
  if (subscription == nullptr) {
    recheck = kNoWatchRecheck;
  } else if (traits.recheck.count() > 0) {
    recheck = traits.recheck;
  } else if (!traits.expires_by_ttl) {
    recheck = kUnnotifiedDeathRecheck;
  }
  for (;;) {
    std::uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(flag->mu);
      seen = flag->changes;
    }
    auto current = Leader();
    ElectionState state;
    if (current.ok()) {
      state = std::move(*current);
    } else if (current.status().code() == StatusCode::kNotFound) {
      state.name = name_;  // never held: term 0
    } else {
      return current.status();
    }
    const auto now = std::chrono::steady_clock::now();
    if (state.term() != after_term || now >= deadline) return state;
    auto until = deadline;
    if (recheck.count() > 0) until = std::min(until, now + recheck);
    if (state.leader && traits.expires_by_ttl) {
      // An expiry is not notified: wake just after the leader's lease runs out (backend clock,
      // taken as an offset from now).
      const auto left = state.leader->expires_at - std::chrono::system_clock::now();
      // Past it but still listed (the clocks differ a little): look again shortly, not in a
      // tight loop.
      const auto after = left > std::chrono::system_clock::duration::zero()
                             ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(left) +
                                   std::chrono::milliseconds(1)
                             : std::chrono::steady_clock::duration(std::chrono::milliseconds(50));
      until = std::min(until, now + after);
    }
    std::unique_lock<std::mutex> lock(flag->mu);
    flag->cv.wait_until(lock, until, [&] { return flag->changes != seen; });
  }
}

}  // namespace ordo
