// inproc: — locks that live in this process.
//
// One table of lock entries under one mutex; the acquire engine (ordo/engine.h) runs the wait
// loop. Exclusive/shared compatibility is the rwlock rule, and a semaphore's permits are
// exclusive holders with a limit and a slot each. The wake-up source is a ChangeBoard: a
// release wakes only the waiters of that name (no polling). Expiry is judged on the steady
// clock: a refused try reports the first conflicting expiry, the engine sleeps no longer than
// that, and the next try purges expired holders itself, so a holder that never releases is
// reclaimed without a reaper thread.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ordo/engine.h"
#include "ordo/lock.h"
#include "ordo/memory_store.h"
#include "ordo/names.h"
#include "ordo/registry.h"

namespace ordo {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct InprocHolder {
  std::string owner;
  LockMode mode;
  SteadyClock::time_point expires;
  std::chrono::system_clock::time_point expires_wall;
  std::uint32_t limit = 1;
  std::uint32_t slot = 0;
};

struct Entry {
  std::map<std::uint64_t, InprocHolder> holders;  // by token
  std::uint64_t last_token = 0;
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// The lock table and stores of the process. Every Locker opened on "inproc:" shares it, so two
// Open("inproc:") calls coordinate with each other as any two clients of a backend do.
class LockTable {
 public:
  LockTable()
      : fenced_([this](std::string_view lock, std::uint64_t token) {
          return CheckLiveHolder(lock, token);
        }),
        objects_([this](std::string_view lock, std::uint64_t token) {
          return CheckLiveHolder(lock, token);
        }) {}

  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner) {
    const auto now = SteadyClock::now();
    Attempt out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Entry& entry = FindOrCreate(request.name);
      PurgeExpired(entry, now);
      if (!entry.holders.empty()) {
        const std::uint32_t in_force = entry.holders.begin()->second.limit;
        if (in_force != request.limit) {
          return LimitMismatchError(request.name, request.limit, in_force);
        }
      }
      if (!Compatible(entry, request)) return Refused(entry, request.mode, now);
      const std::uint64_t token = ++entry.last_token;
      InprocHolder holder{owner,         request.mode, now + request.ttl,
                          std::chrono::system_clock::now() + request.ttl, request.limit,
                          LowestFreeSlot(entry)};
      out.lease = Lease{request.name, owner, token, request.mode, holder.expires_wall,
                        request.ttl, holder.slot};
      entry.holders.emplace(token, std::move(holder));
    }
    board_.NotifyWatchers(request.name);
    return out;
  }

  Result<Lease> Renew(const Lease& lease, milliseconds ttl) {
    std::lock_guard<std::mutex> lock(mu_);
    InprocHolder* h = FindLive(lease.name, lease.token);
    if (h == nullptr) return LostError(lease);
    h->expires = SteadyClock::now() + ttl;
    h->expires_wall = std::chrono::system_clock::now() + ttl;
    Lease out = lease;
    out.owner = h->owner;
    out.mode = h->mode;
    out.expires_at = h->expires_wall;
    out.ttl = ttl;
    out.slot = h->slot;
    return out;
  }

  Status Release(const Lease& lease) {
    std::lock_guard<std::mutex> lock(mu_);
    if (FindLive(lease.name, lease.token) == nullptr) return LostError(lease);
    table_.find(lease.name)->second->holders.erase(lease.token);
    return OkStatus();
  }

  Result<LockState> Describe(std::string_view name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(name);
    if (it == table_.end() || it->second->last_token == 0) {
      return NotFoundError("lock '" + std::string(name) + "' was never acquired");
    }
    return StateOf(it->first, *it->second);
  }

  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string_view, const Entry*> sorted;
    for (const auto& [name, entry] : table_) {
      if (entry->last_token == 0) continue;  // created by a try that was refused
      if (std::string_view(name).substr(0, prefix.size()) == prefix) sorted.emplace(name, entry.get());
    }
    std::vector<LockState> out;
    for (const auto& [name, entry] : sorted) {
      if (out.size() >= limit) break;
      out.push_back(StateOf(std::string(name), *entry));
    }
    return out;
  }

  ChangeBoard& board() { return board_; }
  FencedStore& fenced() { return fenced_; }
  VersionedStore& objects() { return objects_; }

 private:
  static bool Compatible(const Entry& entry, const LockRequest& request) {
    if (entry.holders.empty()) return true;
    if (request.limit > 1) return entry.holders.size() < request.limit;
    if (request.mode == LockMode::kExclusive) return false;
    for (const auto& [token, h] : entry.holders) {
      if (h.mode == LockMode::kExclusive) return false;
    }
    return true;
  }

  // The lowest slot no live holder uses. REQUIRES: expired holders purged.
  static std::uint32_t LowestFreeSlot(const Entry& entry) {
    std::vector<bool> used(entry.holders.size() + 1, false);
    for (const auto& [token, h] : entry.holders) {
      if (h.slot < used.size()) used[h.slot] = true;
    }
    return static_cast<std::uint32_t>(std::find(used.begin(), used.end(), false) - used.begin());
  }

  static Attempt Refused(const Entry& entry, LockMode mode, SteadyClock::time_point now) {
    Attempt out;
    for (const auto& [token, h] : entry.holders) {
      if (mode == LockMode::kShared && h.mode == LockMode::kShared) continue;
      out.holders.push_back({h.owner, token, h.mode, h.expires_wall, h.slot});
      const auto left = std::chrono::ceil<milliseconds>(h.expires - now);
      if (!out.expiry || left < *out.expiry) out.expiry = left;
    }
    return out;
  }

  static void PurgeExpired(Entry& entry, SteadyClock::time_point now) {
    for (auto it = entry.holders.begin(); it != entry.holders.end();) {
      it = it->second.expires <= now ? entry.holders.erase(it) : std::next(it);
    }
  }

  static LockState StateOf(const std::string& name, const Entry& entry) {
    LockState state{name, {}, entry.last_token};
    const auto now = SteadyClock::now();
    for (const auto& [token, h] : entry.holders) {
      if (h.expires <= now) continue;
      state.holders.push_back({h.owner, token, h.mode, h.expires_wall, h.slot});
      state.limit = h.limit;
    }
    return state;
  }

  Entry& FindOrCreate(const std::string& name) {
    auto it = table_.find(name);
    if (it == table_.end()) it = table_.emplace(name, std::make_unique<Entry>()).first;
    return *it->second;
  }

  // The live holder with this token, or nullptr. REQUIRES: mu_ held.
  InprocHolder* FindLive(std::string_view name, std::uint64_t token) {
    auto it = table_.find(name);
    if (it == table_.end()) return nullptr;
    auto h = it->second->holders.find(token);
    if (h == it->second->holders.end()) return nullptr;
    if (h->second.expires <= SteadyClock::now()) {
      it->second->holders.erase(h);
      return nullptr;
    }
    return &h->second;
  }

  Status CheckLiveHolder(std::string_view lock_name, std::uint64_t token) {
    std::lock_guard<std::mutex> lock(mu_);
    if (FindLive(lock_name, token) != nullptr) return OkStatus();
    return StaleTokenError("token " + std::to_string(token) + " is not a live holder of lock '" +
                               std::string(lock_name) + "'",
                           0);
  }

  std::mutex mu_;
  // Entries are never removed, so a name's last token survives its release (invariant 2).
  std::unordered_map<std::string, std::unique_ptr<Entry>, StringHash, std::equal_to<>> table_;
  ChangeBoard board_;
  MemoryFencedStore fenced_;
  MemoryVersionedStore objects_;
};

class InprocLocker final : public EngineLocker {
 public:
  explicit InprocLocker(std::shared_ptr<LockTable> table) : table_(std::move(table)) {}
  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) override {
    return table_->List(prefix, limit);
  }
  Status Ping() override { return OkStatus(); }
  LockerTraits traits() const override {
    return {.expires_by_ttl = true, .shared_across_processes = false};
  }
  FencedStore& fenced() override { return table_->fenced(); }
  VersionedStore& objects() override { return table_->objects(); }

 protected:
  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner,
                             SteadyClock::time_point /*deadline*/) override {
    return table_->TryAcquire(request, owner);
  }
  Result<Lease> DoRenew(const Lease& l, milliseconds ttl) override { return table_->Renew(l, ttl); }
  Status DoRelease(const Lease& l) override { return table_->Release(l); }
  Result<LockState> DoDescribe(std::string_view name) override { return table_->Describe(name); }
  std::unique_ptr<Wakeups> WaitFor(std::string_view name) override {
    return table_->board().WaitFor(name);
  }
  void Released(std::string_view name) override { table_->board().Notify(name); }
  std::unique_ptr<Subscription> Subscribe(std::string_view name,
                                          std::function<void()> changed) override {
    return table_->board().Watch(name, std::move(changed));
  }

 private:
  std::shared_ptr<LockTable> table_;
};

Result<std::unique_ptr<Locker>> OpenInproc(const BackendUrl& url) {
  if (url.has_authority || !url.path.empty()) {
    return InvalidArgumentError("inproc: takes no host or path; write 'inproc:'");
  }
  ORDO_RETURN_IF_ERROR(url.CheckQuery({}));
  static const auto table = std::make_shared<LockTable>();
  return std::unique_ptr<Locker>(new InprocLocker(table));
}

const bool kRegistered = RegisterBackend("inproc", &OpenInproc);

}  // namespace
}  // namespace ordo
