// inproc: — locks that live in this process.
//
// A table of lock entries split into shards, each under its own mutex, so acquisitions of
// distinct names rarely share a lock; the acquire engine (ordo/engine.h) runs the wait loop.
// Exclusive/shared compatibility is the rwlock rule, and a semaphore's permits are exclusive
// holders with a limit and a slot each. The wake-up source is a ChangeBoard: a release wakes
// only the waiters of that name (no polling). Expiry is judged on the steady clock: a refused
// try reports the first conflicting expiry, the engine sleeps no longer than that, and the next
// try purges expired holders itself, so a holder that never releases is reclaimed without a
// reaper thread.
//
// The uncontended pair is the hot path (issue 15): the name is hashed once per call and the
// hash picks both the shard and the bucket; a holder lives in a slot of its entry's vector that
// is reused with its owner string's capacity, so a steady acquire/release allocates nothing
// here beyond the Lease the caller receives; and an acquisition reads the steady clock once (the
// wall-clock expiry is derived from it through an offset refreshed once a second).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ordo/engine.h"
#include "ordo/lock.h"
#include "ordo/memory_store.h"
#include "ordo/names.h"
#include "ordo/registry.h"

namespace ordo {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;
using std::chrono::milliseconds;

// Steady-clock instants to wall-clock times, for the informational Lease::expires_at. The
// offset between the clocks is re-read at most once a second, so a stepped or slewed wall clock
// shows up within a second; expiry itself is never judged on the wall clock. Thread-safe: two
// threads refreshing at once store two valid offsets, and either is good enough.
class WallClock {
 public:
  SystemClock::time_point At(SteadyClock::time_point steady) {
    const std::int64_t now = steady.time_since_epoch().count();
    if (now - read_at_.load(std::memory_order_relaxed) >= kRefresh) {
      const std::int64_t steady_now = SteadyClock::now().time_since_epoch().count();
      const std::int64_t wall_now =
          std::chrono::duration_cast<SteadyClock::duration>(SystemClock::now().time_since_epoch())
              .count();
      offset_.store(wall_now - steady_now, std::memory_order_relaxed);
      read_at_.store(steady_now, std::memory_order_relaxed);
    }
    const SteadyClock::duration wall(now + offset_.load(std::memory_order_relaxed));
    return SystemClock::time_point(std::chrono::duration_cast<SystemClock::duration>(wall));
  }

 private:
  static constexpr std::int64_t kRefresh =
      std::chrono::duration_cast<SteadyClock::duration>(std::chrono::seconds(1)).count();
  // Steady-clock ticks; the first call always refreshes.
  std::atomic<std::int64_t> read_at_{std::numeric_limits<std::int64_t>::min() / 2};
  std::atomic<std::int64_t> offset_{0};
};

// One holder slot of an entry. token 0: free (its owner keeps its capacity for the next one).
struct InprocHolder {
  std::uint64_t token = 0;
  std::string owner;
  LockMode mode = LockMode::kExclusive;
  SteadyClock::time_point expires;
  SystemClock::time_point expires_wall;
  std::uint32_t limit = 1;
  std::uint32_t slot = 0;
};

struct Entry {
  std::vector<InprocHolder> holders;  // live ones have token != 0, in no particular order
  std::size_t live = 0;               // how many of holders are live
  std::uint64_t last_token = 0;
};

// A name with its hash computed once, for heterogeneous lookups.
struct HashedName {
  std::string_view name;
  std::size_t hash;
};

HashedName Hashed(std::string_view name) { return {name, std::hash<std::string_view>{}(name)}; }

struct NameHash {
  using is_transparent = void;
  std::size_t operator()(const std::string& s) const { return std::hash<std::string_view>{}(s); }
  std::size_t operator()(const HashedName& h) const { return h.hash; }
};

struct NameEq {
  using is_transparent = void;
  bool operator()(const std::string& a, const std::string& b) const { return a == b; }
  bool operator()(const HashedName& a, const std::string& b) const { return a.name == b; }
  bool operator()(const std::string& a, const HashedName& b) const { return a == b.name; }
};

// Powers of two: the shard is the hash's top bits, the bucket uses all of them.
constexpr std::size_t kShards = 64;

// One shard of the table. Entries are never removed, so a name's last token survives its
// release (invariant 2).
struct alignas(64) Shard {
  std::mutex mu;
  std::unordered_map<std::string, std::unique_ptr<Entry>, NameHash, NameEq> table;  // by mu
};

// The lock table and stores of the process. Every Locker opened on "inproc:" shares it, so two
// Open("inproc:") calls coordinate with each other as any two clients of a backend do.
// Thread-safe.
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
    const HashedName key = Hashed(request.name);
    Shard& shard = ShardOf(key);
    const auto now = SteadyClock::now();
    Attempt out;
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      Entry& entry = FindOrCreate(shard, key);
      PurgeExpired(entry, now);
      if (entry.live > 0) {
        const std::uint32_t in_force = AnyLive(entry).limit;
        if (in_force != request.limit) {
          return LimitMismatchError(request.name, request.limit, in_force);
        }
      }
      if (!Compatible(entry, request)) return Refused(entry, request.mode, now);
      const std::uint32_t slot = LowestFreeSlot(entry);
      InprocHolder& holder = FreeHolder(entry);
      holder.token = ++entry.last_token;
      holder.owner.assign(owner);  // reuses the slot's capacity
      holder.mode = request.mode;
      holder.expires = now + request.ttl;
      holder.expires_wall = wall_.At(holder.expires);
      holder.limit = request.limit;
      holder.slot = slot;
      ++entry.live;
      out.lease.emplace(Lease{request.name, owner, holder.token, request.mode,
                              holder.expires_wall, request.ttl, slot});
    }
    board_.NotifyWatchers(request.name);
    return out;
  }

  Result<Lease> Renew(const Lease& lease, milliseconds ttl) {
    const HashedName key = Hashed(lease.name);
    Shard& shard = ShardOf(key);
    std::lock_guard<std::mutex> lock(shard.mu);
    const auto now = SteadyClock::now();
    InprocHolder* h = FindLive(shard, key, lease.token, now);
    if (h == nullptr) return LostError(lease);
    h->expires = now + ttl;
    h->expires_wall = wall_.At(h->expires);
    Lease out = lease;
    out.owner = h->owner;
    out.mode = h->mode;
    out.expires_at = h->expires_wall;
    out.ttl = ttl;
    out.slot = h->slot;
    return out;
  }

  Status Release(const Lease& lease) {
    const HashedName key = Hashed(lease.name);
    Shard& shard = ShardOf(key);
    std::lock_guard<std::mutex> lock(shard.mu);
    const auto now = SteadyClock::now();
    auto it = shard.table.find(key);
    if (it == shard.table.end()) return LostError(lease);
    Entry& entry = *it->second;
    InprocHolder* h = FindLive(entry, lease.token, now);
    if (h == nullptr) return LostError(lease);
    Free(entry, *h);
    return OkStatus();
  }

  Result<LockState> Describe(std::string_view name) {
    const HashedName key = Hashed(name);
    Shard& shard = ShardOf(key);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.table.find(key);
    if (it == shard.table.end() || it->second->last_token == 0) {
      return NotFoundError("lock '" + std::string(name) + "' was never acquired");
    }
    return StateOf(it->first, *it->second);
  }

  // Each shard is read under its own lock: a listing taken while other threads acquire is a
  // sequence of per-name snapshots, as it is on every other backend.
  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) {
    std::map<std::string, LockState> sorted;
    for (Shard& shard : shards_) {
      std::lock_guard<std::mutex> lock(shard.mu);
      for (const auto& [name, entry] : shard.table) {
        if (entry->last_token == 0) continue;  // created by a try that was refused
        if (std::string_view(name).substr(0, prefix.size()) != prefix) continue;
        // Only the `limit` smallest names are kept.
        if (sorted.size() >= limit && (sorted.empty() || name >= sorted.rbegin()->first)) {
          continue;
        }
        sorted.emplace(name, StateOf(name, *entry));
        if (sorted.size() > limit) sorted.erase(std::prev(sorted.end()));
      }
    }
    std::vector<LockState> out;
    out.reserve(sorted.size());
    for (auto& [name, state] : sorted) out.push_back(std::move(state));
    return out;
  }

  ChangeBoard& board() { return board_; }
  FencedStore& fenced() { return fenced_; }
  VersionedStore& objects() { return objects_; }

 private:
  Shard& ShardOf(const HashedName& key) {
    // The top bits: the table's buckets use the low ones.
    return shards_[(key.hash >> (sizeof(std::size_t) * 8 - 6)) % kShards];
  }
  static_assert(kShards == 64, "ShardOf takes the hash's top 6 bits");

  static const InprocHolder& AnyLive(const Entry& entry) {
    for (const auto& h : entry.holders) {
      if (h.token != 0) return h;
    }
    return entry.holders.front();  // unreachable: REQUIRES entry.live > 0
  }

  static bool Compatible(const Entry& entry, const LockRequest& request) {
    if (entry.live == 0) return true;
    if (request.limit > 1) return entry.live < request.limit;
    if (request.mode == LockMode::kExclusive) return false;
    for (const auto& h : entry.holders) {
      if (h.token != 0 && h.mode == LockMode::kExclusive) return false;
    }
    return true;
  }

  // The lowest slot no live holder uses. REQUIRES: expired holders purged.
  static std::uint32_t LowestFreeSlot(const Entry& entry) {
    if (entry.live == 0) return 0;
    std::vector<bool> used(entry.live + 1, false);
    for (const auto& h : entry.holders) {
      if (h.token != 0 && h.slot < used.size()) used[h.slot] = true;
    }
    return static_cast<std::uint32_t>(std::find(used.begin(), used.end(), false) - used.begin());
  }

  static InprocHolder& FreeHolder(Entry& entry) {
    for (auto& h : entry.holders) {
      if (h.token == 0) return h;
    }
    return entry.holders.emplace_back();
  }

  static void Free(Entry& entry, InprocHolder& h) {
    h.token = 0;
    --entry.live;
  }

  static void SortByToken(std::vector<Holder>& holders) {
    std::sort(holders.begin(), holders.end(),
              [](const Holder& a, const Holder& b) { return a.token < b.token; });
  }

  static Attempt Refused(const Entry& entry, LockMode mode, SteadyClock::time_point now) {
    Attempt out;
    for (const auto& h : entry.holders) {
      if (h.token == 0) continue;
      if (mode == LockMode::kShared && h.mode == LockMode::kShared) continue;
      out.holders.push_back({h.owner, h.token, h.mode, h.expires_wall, h.slot});
      const auto left = std::chrono::ceil<milliseconds>(h.expires - now);
      if (!out.expiry || left < *out.expiry) out.expiry = left;
    }
    SortByToken(out.holders);
    return out;
  }

  static void PurgeExpired(Entry& entry, SteadyClock::time_point now) {
    if (entry.live == 0) return;
    for (auto& h : entry.holders) {
      if (h.token != 0 && h.expires <= now) Free(entry, h);
    }
  }

  static LockState StateOf(const std::string& name, const Entry& entry) {
    LockState state{name, {}, entry.last_token};
    const auto now = SteadyClock::now();
    for (const auto& h : entry.holders) {
      if (h.token == 0 || h.expires <= now) continue;
      state.holders.push_back({h.owner, h.token, h.mode, h.expires_wall, h.slot});
      state.limit = h.limit;
    }
    SortByToken(state.holders);
    return state;
  }

  // REQUIRES: shard.mu held.
  static Entry& FindOrCreate(Shard& shard, const HashedName& key) {
    auto it = shard.table.find(key);
    if (it == shard.table.end()) {
      it = shard.table.emplace(std::string(key.name), std::make_unique<Entry>()).first;
    }
    return *it->second;
  }

  // The live holder with this token, or nullptr; an expired one is freed. REQUIRES: the
  // entry's shard locked.
  static InprocHolder* FindLive(Entry& entry, std::uint64_t token, SteadyClock::time_point now) {
    for (auto& h : entry.holders) {
      if (h.token != token) continue;
      if (h.expires <= now) {
        Free(entry, h);
        return nullptr;
      }
      return &h;
    }
    return nullptr;
  }

  static InprocHolder* FindLive(Shard& shard, const HashedName& key, std::uint64_t token,
                                SteadyClock::time_point now) {
    auto it = shard.table.find(key);
    if (it == shard.table.end()) return nullptr;
    return FindLive(*it->second, token, now);
  }

  Status CheckLiveHolder(std::string_view lock_name, std::uint64_t token) {
    const HashedName key = Hashed(lock_name);
    Shard& shard = ShardOf(key);
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      if (FindLive(shard, key, token, SteadyClock::now()) != nullptr) return OkStatus();
    }
    return StaleTokenError("token " + std::to_string(token) + " is not a live holder of lock '" +
                               std::string(lock_name) + "'",
                           0);
  }

  std::array<Shard, kShards> shards_;
  WallClock wall_;
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
