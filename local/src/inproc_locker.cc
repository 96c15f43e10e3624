// inproc: — locks that live in this process.
//
// One table of lock entries under one mutex. Exclusive/shared compatibility is the rwlock rule;
// each entry has its own condition variable, so a release wakes only the waiters of that name
// (no polling). Expiry is judged on the steady clock: a waiter sleeps until the earlier of its
// own deadline and the first holder's expiry, and then purges expired holders itself, so a
// holder that never releases is reclaimed without a reaper thread.
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ordo/lock.h"
#include "ordo/memory_store.h"
#include "ordo/names.h"
#include "ordo/registry.h"

namespace ordo {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct InprocHolder {
  std::string owner;
  LockMode mode;
  SteadyClock::time_point expires;
  std::chrono::system_clock::time_point expires_wall;
};

struct Entry {
  std::map<std::uint64_t, InprocHolder> holders;  // by token
  std::uint64_t last_token = 0;
  int waiters = 0;
  std::condition_variable cv;
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

  Result<Lease> Acquire(const LockRequest& request) {
    ORDO_RETURN_IF_ERROR(ValidateRequest(request));
    const auto start = SteadyClock::now();
    const auto deadline = start + request.wait;
    std::unique_lock<std::mutex> lock(mu_);
    Entry& entry = FindOrCreate(request.name);
    while (true) {
      const auto now = SteadyClock::now();
      PurgeExpired(entry, now);
      if (Compatible(entry, request.mode)) break;
      if (now >= deadline) {
        return LockHeldError("lock '" + request.name + "' is held by " + HolderText(entry));
      }
      auto wake = deadline;
      for (const auto& [token, h] : entry.holders) wake = std::min(wake, h.expires);
      ++entry.waiters;
      entry.cv.wait_until(lock, wake);
      --entry.waiters;
    }
    const auto now = SteadyClock::now();
    const std::uint64_t token = ++entry.last_token;
    InprocHolder holder{request.owner.empty() ? DefaultOwner() : request.owner, request.mode,
                        now + request.ttl, std::chrono::system_clock::now() + request.ttl};
    Lease lease{request.name, holder.owner, token, request.mode, holder.expires_wall,
                request.ttl};
    entry.holders.emplace(token, std::move(holder));
    return lease;
  }

  Result<Lease> Renew(const Lease& lease, std::chrono::milliseconds ttl) {
    ORDO_RETURN_IF_ERROR(ValidateName(lease.name));
    ORDO_RETURN_IF_ERROR(ValidateTtl(ttl));
    std::lock_guard<std::mutex> lock(mu_);
    InprocHolder* h = FindLive(lease.name, lease.token);
    if (h == nullptr) return Lost(lease);
    h->expires = SteadyClock::now() + ttl;
    h->expires_wall = std::chrono::system_clock::now() + ttl;
    Lease out = lease;
    out.owner = h->owner;
    out.mode = h->mode;
    out.expires_at = h->expires_wall;
    out.ttl = ttl;
    return out;
  }

  Status Release(const Lease& lease) {
    ORDO_RETURN_IF_ERROR(ValidateName(lease.name));
    std::lock_guard<std::mutex> lock(mu_);
    if (FindLive(lease.name, lease.token) == nullptr) return Lost(lease);
    Entry& entry = *table_.find(lease.name)->second;
    entry.holders.erase(lease.token);
    if (entry.waiters > 0) entry.cv.notify_all();
    return OkStatus();
  }

  Result<LockState> Describe(std::string_view name) {
    ORDO_RETURN_IF_ERROR(ValidateName(name));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(name);
    if (it == table_.end()) return NotFoundError("lock '" + std::string(name) + "' was never acquired");
    return StateOf(it->first, *it->second);
  }

  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string_view, const Entry*> sorted;
    for (const auto& [name, entry] : table_) {
      if (std::string_view(name).substr(0, prefix.size()) == prefix) sorted.emplace(name, entry.get());
    }
    std::vector<LockState> out;
    for (const auto& [name, entry] : sorted) {
      if (out.size() >= limit) break;
      out.push_back(StateOf(std::string(name), *entry));
    }
    return out;
  }

  FencedStore& fenced() { return fenced_; }
  VersionedStore& objects() { return objects_; }

 private:
  static bool Compatible(const Entry& entry, LockMode mode) {
    if (entry.holders.empty()) return true;
    if (mode == LockMode::kExclusive) return false;
    for (const auto& [token, h] : entry.holders) {
      if (h.mode == LockMode::kExclusive) return false;
    }
    return true;
  }

  static void PurgeExpired(Entry& entry, SteadyClock::time_point now) {
    for (auto it = entry.holders.begin(); it != entry.holders.end();) {
      it = it->second.expires <= now ? entry.holders.erase(it) : std::next(it);
    }
  }

  static std::string HolderText(const Entry& entry) {
    std::string out;
    for (const auto& [token, h] : entry.holders) {
      if (!out.empty()) out += ", ";
      out += "'" + h.owner + "' (token " + std::to_string(token) + ", " +
             std::string(LockModeName(h.mode)) + ")";
    }
    return out;
  }

  static LockState StateOf(const std::string& name, const Entry& entry) {
    LockState state{name, {}, entry.last_token};
    const auto now = SteadyClock::now();
    for (const auto& [token, h] : entry.holders) {
      if (h.expires > now) state.holders.push_back({h.owner, token, h.mode, h.expires_wall});
    }
    return state;
  }

  static Status Lost(const Lease& lease) {
    return LeaseLostError("lease on '" + lease.name + "' with token " +
                          std::to_string(lease.token) +
                          " is not held: it expired, was released or was taken over");
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
      if (it->second->waiters > 0) it->second->cv.notify_all();
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
  MemoryFencedStore fenced_;
  MemoryVersionedStore objects_;
};

class InprocLocker final : public Locker {
 public:
  explicit InprocLocker(std::shared_ptr<LockTable> table) : table_(std::move(table)) {}
  Result<Lease> Acquire(const LockRequest& r) override { return table_->Acquire(r); }
  Result<Lease> Renew(const Lease& l, std::chrono::milliseconds ttl) override {
    return table_->Renew(l, ttl);
  }
  Status Release(const Lease& l) override { return table_->Release(l); }
  Result<LockState> Describe(std::string_view name) override { return table_->Describe(name); }
  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) override {
    return table_->List(prefix, limit);
  }
  Status Ping() override { return OkStatus(); }
  LockerTraits traits() const override {
    return {.expires_by_ttl = true, .shared_across_processes = false};
  }
  FencedStore& fenced() override { return table_->fenced(); }
  VersionedStore& objects() override { return table_->objects(); }

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
