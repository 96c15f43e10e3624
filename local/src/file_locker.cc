#include "file_locker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "file_store.h"
#include "file_util.h"
#include "lock_file.h"
#include "ordo/engine.h"
#include "ordo/names.h"

namespace ordo::local {
namespace {

using SystemClock = std::chrono::system_clock;

// The longest a permit waiter sleeps before re-checking for a release by another process.
constexpr std::chrono::milliseconds kPermitRecheck(25);

// One acquisition held by this Locker. It has its own descriptor, hence its own open file
// description, so acquisitions exclude each other even inside one process and one thread (locks
// are not re-entrant), and the kernel frees the lock when the descriptor is closed or the
// process dies.
struct Held {
  std::mutex mu;                        // serialises Renew and Release, which both use fd
  UniqueFd fd;                          // guarded by mu
  std::uint32_t slot = 0;               // guarded by mu
  HolderRecord record;                  // guarded by mu
  std::chrono::milliseconds ttl{0};     // guarded by mu
  bool released = false;                // guarded by mu
};

// Drops every lock `fd`'s open file description holds: the lock itself, the holder slot, the
// guard. Explicit, rather than left to close(), because a forked child may share the description
// (and because a released descriptor is kept for reuse; see FreeFds).
void DropLocks(const MainLock& main, int fd) {
  if (main.unlock != nullptr) main.unlock(fd);
  OfdLock(fd, F_UNLCK, 0, 0, /*block=*/false);
}

// Bumped in every forked child, so that a child never reuses a descriptor whose open file
// description it shares with its parent.
std::atomic<std::uint64_t> fork_generation{0};

std::uint64_t ForkGeneration() {
  static const bool kAtFork = [] {
    pthread_atfork(nullptr, nullptr,
                   [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)kAtFork;
  return fork_generation.load(std::memory_order_relaxed);
}

struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Released descriptors of one Locker, per lock name, which the next acquisition of the name
// reuses instead of opening the file again: openat, fstat and close were three of the fourteen
// system calls of an acquire/release pair. Reuse keeps per-acquisition exclusion: every
// descriptor here was opened by this Locker and never duplicated, so it is its own open file
// description, and DropLocks unlocked all of it (OFD and flock locks belong to the
// description, and closing or keeping other descriptors of the file changes none of them;
// classic POSIX locks, which would be dropped by any close, are not used). Two acquisitions
// never share one: a descriptor is either held by one lease or in here. Thread-safe.
class FreeFds {
 public:
  // At most this many idle descriptors per Locker; more are closed.
  static constexpr std::size_t kMax = 64;

  // A released descriptor of `name`'s file, or an invalid one.
  UniqueFd Take(std::string_view name) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!SameProcess()) return UniqueFd();
    auto it = free_.find(name);
    if (it == free_.end() || it->second.empty()) return UniqueFd();
    UniqueFd fd = std::move(it->second.back());
    it->second.pop_back();
    --count_;
    return fd;
  }

  // REQUIRES: `fd` holds no lock.
  void Put(std::string_view name, UniqueFd fd) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!SameProcess() || count_ >= kMax) return;  // fd closes here
    auto it = free_.find(name);
    if (it == free_.end()) it = free_.emplace(std::string(name), std::vector<UniqueFd>()).first;
    it->second.push_back(std::move(fd));
    ++count_;
  }

 private:
  // False in a forked child, which then forgets (closes, never unlocks: the parent may have
  // locked the shared description since) what it inherited. REQUIRES: mu_ held.
  bool SameProcess() {
    const std::uint64_t generation = ForkGeneration();
    if (generation == generation_) return true;
    free_.clear();
    count_ = 0;
    generation_ = generation;
    return false;
  }

  std::mutex mu_;
  std::unordered_map<std::string, std::vector<UniqueFd>, NameHash, std::equal_to<>>
      free_;                                   // guarded by mu_
  std::size_t count_ = 0;                      // guarded by mu_
  std::uint64_t generation_ = ForkGeneration();  // guarded by mu_
};

class FileLocker final : public EngineLocker {
 public:
  FileLocker(const MainLock& main, std::string path, bool durable, UniqueFd dir,
             UniqueFd fenced_dir, UniqueFd objects_dir)
      : main_(main),
        path_(std::move(path)),
        durable_(durable),
        dir_(std::move(dir)),
        fenced_dir_(std::move(fenced_dir)),
        objects_dir_(std::move(objects_dir)),
        fenced_(fenced_dir_.get(), path_ + "/.fenced", durable_,
                [this](std::string_view lock, std::uint64_t token) {
                  return PinLiveHolder(lock, token);
                }),
        objects_(objects_dir_.get(), path_ + "/.objects", durable_,
                 [this](std::string_view lock, std::uint64_t token) {
                   return PinLiveHolder(lock, token);
                 }) {}

  // Leases still held are released: the locks live as long as their descriptors, which this
  // Locker owns.
  ~FileLocker() override {
    held_.Drain([&](const std::string&, std::uint64_t, std::shared_ptr<Held>& held) {
      std::lock_guard<std::mutex> held_lock(held->mu);
      if (!held->released) DropLocks(main_, held->fd.get());
    });
  }

  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) override {
    auto names = LockNames(prefix);
    if (!names.ok()) return names.status();
    std::vector<LockState> out;
    for (const auto& name : *names) {
      if (out.size() >= limit) break;
      auto state = DescribeValid(name);
      if (state.ok()) {
        out.push_back(std::move(*state));
      } else if (state.status().code() != StatusCode::kNotFound) {
        return state.status();  // a file never acquired (counter 0) is not a lock yet
      }
    }
    return out;
  }

  Status Ping() override {
    struct stat st{};
    if (::fstat(dir_.get(), &st) != 0) return FromErrno(errno, "stat lock directory '" + path_ + "'");
    if (st.st_nlink == 0) return UnavailableError("lock directory '" + path_ + "' was removed");
    return OkStatus();
  }

  LockerTraits traits() const override {
    return {.expires_by_ttl = false, .shared_across_processes = true};
  }

  FencedStore& fenced() override { return fenced_; }
  VersionedStore& objects() override { return objects_; }

 protected:
  // The kernel queues the waiters of a file lock, so this try blocks until `deadline` itself:
  // the blocking lock call is this backend's wake-up source (a release or the holder's death
  // wakes it, with no polling). Permits (limit > 1) have no single lock to queue on; see
  // TryPermit.
  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner,
                             SteadyClock::time_point deadline) override {
    if (request.limit > 1) return TryPermit(request, owner, deadline);
    const std::string& name = request.name;
    auto opened = ReuseOrOpen(name);
    if (!opened.ok()) return opened.status();
    UniqueFd fd = std::move(*opened);
    // An exclusive holder first tries the fast admission (FastAdmit), which under fcntl:// takes
    // the lock itself in the same call; when that is refused it waits for the lock as usual
    // and tries the fast admission once more before the long way (Register).
    const bool exclusive = request.mode == LockMode::kExclusive;
    bool fast = exclusive && main_.in_fast_range && LockFastRange(fd.get());
    if (!fast) {
      auto got = LockBefore([&](bool block) { return main_.lock(fd.get(), request.mode, block); },
                            deadline, What("lock '", path_, "/", name, "'"));
      if (!got.ok()) return got.status();
      if (!*got) {
        free_fds_.Put(name, std::move(fd));  // it holds no lock
        Attempt refused;
        refused.holders = Holders(name);
        return refused;
      }
      fast = exclusive && LockFastRange(fd.get());
    }

    auto held = NewHeld(request, owner);
    auto admitted = fast ? FastAdmit(fd.get(), name, held.get())
                         : Register(fd.get(), name, held.get(), nullptr);
    if (!admitted.ok()) {
      DropLocks(main_, fd.get());
      return admitted.status();
    }
    return Grant(request, std::move(fd), std::move(held));
  }

  // The lock is bound to the descriptor, not to a TTL: Renew only reports (and records, for
  // Describe in other processes) a new nominal expiry.
  Result<Lease> DoRenew(const Lease& lease, std::chrono::milliseconds ttl) override {
    std::shared_ptr<Held> held = held_.Find(lease.name, lease.token).value_or(nullptr);
    if (held == nullptr) return Lost(lease);
    std::lock_guard<std::mutex> lock(held->mu);
    if (held->released) return Lost(lease);
    held->record.expires_at = SystemClock::now() + ttl;
    held->ttl = ttl;
    // Best-effort: the record only informs Describe; failing to rewrite it does not endanger
    // the lock, so it must not make a keep-alive report the lease lost.
    if (LockShort(held->fd.get(), F_WRLCK, kGuardStart, kGuardLength, GuardWhat(lease.name))
            .ok()) {
      WriteSlot(held->fd.get(), lease.name, held->slot, held->record).IgnoreError();
      OfdLock(held->fd.get(), F_UNLCK, kGuardStart, kGuardLength, false);
    }
    Lease out = lease;
    out.owner = held->record.owner;
    out.mode = held->record.mode;
    out.expires_at = held->record.expires_at;
    out.ttl = ttl;
    return out;
  }

  Status DoRelease(const Lease& lease) override {
    std::shared_ptr<Held> held = held_.Take(lease.name, lease.token).value_or(nullptr);
    if (held == nullptr) return Lost(lease);
    std::lock_guard<std::mutex> lock(held->mu);
    held->released = true;
    // Taking the guard waits for strict-mode writes that pinned this holder as live, so none is
    // still in flight once Release returns. The record is left in place: it is dead as soon as
    // DropLocks unlocks its slot (lock_file.h: liveness is the slot lock, not the record), and
    // the next holder of the slot overwrites it.
    LockShort(held->fd.get(), F_WRLCK, kGuardStart, kGuardLength, GuardWhat(lease.name))
        .IgnoreError();
    DropLocks(main_, held->fd.get());
    free_fds_.Put(lease.name, std::move(held->fd));
    return OkStatus();
  }

  Result<LockState> DoDescribe(std::string_view name) override {
    return DescribeValid(std::string(name));
  }

  std::unique_ptr<Wakeups> WaitFor(std::string_view /*name*/) override { return nullptr; }
  // Wakes this process's permit waiters (TryPermit) at once.
  void Released(std::string_view name) override { permit_board_.Notify(name); }
  std::unique_ptr<Subscription> Subscribe(std::string_view /*name*/,
                                          std::function<void()> /*changed*/) override {
    return nullptr;
  }

 private:
  std::string Shown(std::string_view name) const { return path_ + "/" + std::string(name); }
  What GuardWhat(std::string_view name) const {
    return What("token guard of lock file '", path_, "/", name, "'");
  }

  // A released descriptor of the lock file (FreeFds) or, when there is none or its file has
  // since been unlinked or replaced (no link left: no longer the file under the name), a fresh
  // one.
  Result<UniqueFd> ReuseOrOpen(const std::string& name) {
    UniqueFd fd = free_fds_.Take(name);
    if (fd.valid()) {
      struct stat st{};
      if (::fstat(fd.get(), &st) == 0 && st.st_nlink > 0) return fd;
    }
    return OpenLockFile(name, O_RDWR, /*create=*/true);
  }

  static Status Lost(const Lease& lease) {
    return LostError(lease, "it was released, or never acquired through this Locker");
  }

  // Opens the lock file `name` (never through a symbolic link, close-on-exec), creating it with
  // mode 0600 when `create`. A missing file without `create` is kNotFound.
  Result<UniqueFd> OpenLockFile(const std::string& name, int flags, bool create) {
    // O_NONBLOCK: opening a FIFO someone planted under the name must not hang; it is refused
    // below. It changes nothing for regular files and their locks.
    flags |= O_NONBLOCK;
    int fd = OpenAt(dir_.get(), name, flags);
    if (fd == -ENOENT && create) {
      fd = OpenAt(dir_.get(), name, flags | O_CREAT);
      // With durable=1 the new file's directory entry is on disk before its first token is
      // issued; otherwise a power loss could drop the file and restart the counter.
      if (fd >= 0 && durable_ && ::fsync(dir_.get()) != 0) {
        const int err = errno;
        ::close(fd);
        return FromErrno(err, "fsync lock directory '" + path_ + "'");
      }
      if (fd == -ENOENT) return UnavailableError("lock directory '" + path_ + "' is gone");
    }
    if (fd == -ENOENT) return NotFoundError("lock '" + name + "' was never acquired");
    if (fd == -ELOOP) {
      return InvalidArgumentError("lock file '" + Shown(name) +
                                  "' is a symbolic link; ordo never follows one");
    }
    if (fd < 0) return FromErrno(-fd, "open lock file '" + Shown(name) + "'");
    UniqueFd file(fd);
    struct stat st{};
    if (::fstat(file.get(), &st) != 0) return FromErrno(errno, "stat lock file '" + Shown(name) + "'");
    if (!S_ISREG(st.st_mode)) {
      return InvalidArgumentError("lock file '" + Shown(name) + "' is not a regular file");
    }
    return file;
  }

  std::shared_ptr<Held> NewHeld(const LockRequest& request, const std::string& owner) {
    auto held = std::make_shared<Held>();
    held->record.mode = request.mode;
    held->record.owner = owner;
    held->record.expires_at = SystemClock::now() + request.ttl;
    held->record.limit = request.limit;
    held->ttl = request.ttl;
    return held;
  }

  Attempt Grant(const LockRequest& request, UniqueFd fd, std::shared_ptr<Held> held) {
    held->fd = std::move(fd);
    Attempt granted;
    granted.lease = Lease{request.name, held->record.owner, held->record.token, request.mode,
                          held->record.expires_at, request.ttl};
    // A permit's slot is its record's index; a plain holder reports slot 0 whatever record it
    // publishes in.
    granted.lease->slot = request.limit > 1 ? held->slot : 0;
    const std::uint64_t token = held->record.token;
    held_.Insert(request.name, token, std::move(held));
    return granted;
  }

  // A semaphore permit: one admission under the guard (Register), repeated until `deadline`
  // while the permits are all taken. Its wake-ups: releases in this process notify
  // permit_board_ at once; releases and deaths in other processes are seen by re-checking at
  // 1 ms doubling to kPermitRecheck, because no kernel lock waits for "any of N" records.
  Result<Attempt> TryPermit(const LockRequest& request, const std::string& owner,
                            SteadyClock::time_point deadline) {
    const std::string& name = request.name;
    auto opened = ReuseOrOpen(name);
    if (!opened.ok()) return opened.status();
    UniqueFd fd = std::move(*opened);
    std::unique_ptr<Wakeups> wakeups;
    std::chrono::milliseconds backoff(1);
    for (;;) {
      const std::uint64_t ticket = wakeups != nullptr ? wakeups->Take() : 0;
      auto held = NewHeld(request, owner);
      std::vector<Holder> holders;
      auto admitted = Register(fd.get(), name, held.get(), &holders);
      if (!admitted.ok()) return admitted.status();
      if (*admitted) return Grant(request, std::move(fd), std::move(held));
      const auto now = SteadyClock::now();
      if (now >= deadline) {
        free_fds_.Put(name, std::move(fd));  // Register locked nothing it did not unlock
        Attempt refused;
        refused.holders = std::move(holders);
        return refused;
      }
      if (wakeups == nullptr) {
        wakeups = permit_board_.WaitFor(name);  // then try again at once: the ticket guards it
        continue;
      }
      wakeups->Wait(ticket, std::min(deadline, now + backoff));
      backoff = std::min(backoff * 2, kPermitRecheck);
    }
  }

  // Admits a holder under the exclusive guard: refuses a limit that differs from the live
  // holders' (a plain lock while permits are held, or the reverse: kInvalidArgument, nothing
  // written) and, with `full` given (permits), reports false with the holders when all
  // `limit` permits are live; otherwise issues the token and publishes the record. Every
  // admission runs here, so the live records never mix limits and never exceed theirs.
  Result<bool> Register(int fd, const std::string& name, Held* held, std::vector<Holder>* full) {
    ORDO_RETURN_IF_ERROR(LockShort(fd, F_WRLCK, kGuardStart, kGuardLength, GuardWhat(name)));
    Result<bool> out = Admit(fd, name, held, full);
    OfdLock(fd, F_UNLCK, kGuardStart, kGuardLength, false);
    return out;
  }

  // The fast admission range (lock_file.h) locked at once, or not at all (some byte of it busy:
  // a reader or writer of the guard, a live permit, a holder in slot 0).
  static bool LockFastRange(int fd) {
    return OfdLock(fd, F_WRLCK, kGuardStart, kFastRangeLength, /*block=*/false) == 0;
  }

  // Admits a plain exclusive holder whose descriptor holds the lock itself and the fast
  // admission range: that range says what Admit would learn (no permit is live, and no other
  // plain holder can be, the lock being exclusive) and has claimed slot 0, so what is left is
  // the token and the record, in one write. Then the guard is unlocked, and under flock:// the
  // unused bytes with it (fcntl:// keeps kLockByte, the lock itself).
  Result<bool> FastAdmit(int fd, const std::string& name, Held* held) {
    auto token = IssueTokenToSlotZero(fd, name, durable_, &held->record);
    if (!token.ok()) return token.status();
    held->slot = 0;
    OfdLock(fd, F_UNLCK, kGuardStart, main_.in_fast_range ? kGuardLength : kSlotBase, false);
    return true;
  }

  // Register's body. REQUIRES: the guard held exclusively through `fd`.
  Result<bool> Admit(int fd, const std::string& name, Held* held, std::vector<Holder>* full) {
    const std::uint32_t limit = held->record.limit;
    // A plain holder (the lock itself held: no other plain holder conflicts) needs only to know
    // that no permit is live, which the permits byte tells in one call.
    bool check = full != nullptr;
    if (!check) {
      auto permits = OfdRangeHeldByOther(fd, kPermitsByte, 1, GuardWhat(name));
      if (!permits.ok()) return permits.status();
      check = *permits;
    }
    if (check) {
      auto live = LiveHolders(fd, name);
      if (!live.ok()) return live.status();
      if (!live->empty() && live->front().limit != limit) {
        return LimitMismatchError(name, limit, live->front().limit);
      }
      if (full != nullptr && live->size() >= limit) {
        for (const auto& r : *live) full->push_back(ToHolder(r));
        return false;
      }
    }
    if (limit > 1) {
      const int err = OfdLock(fd, F_RDLCK, kPermitsByte, 1, /*block=*/false);
      if (err != 0) return FromErrno(err, "lock the permits byte of lock file '" + Shown(name) + "'");
    }
    auto token = IssueToken(fd, name, durable_);
    if (token.ok()) {
      held->record.token = *token;
      auto slot = ClaimSlot(fd, name, held->record);
      if (slot.ok()) {
        held->slot = *slot;
        return true;
      }
      token = slot.status();
    }
    if (limit > 1) OfdLock(fd, F_UNLCK, kPermitsByte, 1, false);
    return token.status();
  }

  static Holder ToHolder(const HolderRecord& r) {
    return {r.owner, r.token, r.mode, r.expires_at, r.limit > 1 ? r.slot : 0};
  }

  // Everything the lock file says, read under the guard (shared) so that a token and its record
  // are seen together. What it cannot see: a holder that has the lock but not yet the guard to
  // publish its record (a few system calls), and a lock taken by another program such as
  // flock(1), which writes no record. REQUIRES: `name` valid.
  Result<LockState> DescribeValid(const std::string& name) {
    auto file = OpenLockFile(name, O_RDONLY, /*create=*/false);
    if (!file.ok()) return file.status();
    ORDO_RETURN_IF_ERROR(LockShort(file->get(), F_RDLCK, kGuardStart, kGuardLength, GuardWhat(name)));
    auto last = ReadCounter(file->get(), name);
    if (!last.ok()) return last.status();
    if (*last == 0) return NotFoundError("lock '" + name + "' was never acquired");
    auto holders = LiveHolders(file->get(), name);
    if (!holders.ok()) return holders.status();
    LockState state{name, {}, *last};
    if (!holders->empty()) state.limit = holders->front().limit;
    for (const auto& h : *holders) state.holders.push_back(ToHolder(h));
    return state;
  }

  // The live holders, for a kLockHeld message; empty if unknown.
  std::vector<Holder> Holders(const std::string& name) {
    auto state = DescribeValid(name);
    if (!state.ok()) return {};
    return std::move(state->holders);
  }

  // Strict mode (see LiveHolderPin): the returned descriptor holds the guard shared.
  Result<UniqueFd> PinLiveHolder(std::string_view lock_name, std::uint64_t token) {
    const std::string name(lock_name);
    const Status not_live = StaleTokenError(
        "token " + std::to_string(token) + " is not a live holder of lock '" + name + "'", 0);
    auto file = OpenLockFile(name, O_RDONLY, /*create=*/false);
    if (!file.ok()) {
      return file.status().code() == StatusCode::kNotFound ? not_live : file.status();
    }
    ORDO_RETURN_IF_ERROR(LockShort(file->get(), F_RDLCK, kGuardStart, kGuardLength, GuardWhat(name)));
    auto holders = LiveHolders(file->get(), name);
    if (!holders.ok()) return holders.status();
    for (const auto& h : *holders) {
      if (h.token == token) return std::move(*file);
    }
    return not_live;
  }

  // The valid lock names in the directory that start with `prefix`, sorted.
  Result<std::vector<std::string>> LockNames(std::string_view prefix) {
    // A descriptor of its own: readdir position lives in the open file description.
    const int fd = OpenAt(dir_.get(), ".", O_RDONLY | O_DIRECTORY);
    if (fd < 0) return FromErrno(-fd, "open lock directory '" + path_ + "'");
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      const int err = errno;
      ::close(fd);
      return FromErrno(err, "read lock directory '" + path_ + "'");
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* entry = ::readdir(dir)) {
      std::string_view name(entry->d_name);
      if (name.substr(0, prefix.size()) != prefix) continue;
      if (entry->d_type != DT_REG && entry->d_type != DT_UNKNOWN) continue;
      if (!ValidateName(name).ok()) continue;  // ".", "..", ".fenced", ".objects", strays
      names.emplace_back(name);
    }
    const int err = errno;
    ::closedir(dir);
    if (err != 0) return FromErrno(err, "read lock directory '" + path_ + "'");
    std::sort(names.begin(), names.end());
    return names;
  }

  const MainLock main_;
  const std::string path_;
  const bool durable_;
  const UniqueFd dir_;
  const UniqueFd fenced_dir_;
  const UniqueFd objects_dir_;
  HeldTable<std::shared_ptr<Held>> held_;
  FreeFds free_fds_;
  ChangeBoard permit_board_;  // permit waiters of this Locker; see TryPermit
  FileFencedStore fenced_;
  FileVersionedStore objects_;
};

}  // namespace

Result<std::unique_ptr<Locker>> OpenFileLocker(const BackendUrl& url, const MainLock& main) {
  const std::string scheme(main.scheme);
  if (!url.host.empty() || !url.port.empty() || !url.user.empty()) {
    return InvalidArgumentError("'" + url.Masked() + "': " + scheme +
                                ": takes a directory, not a host; write " + scheme +
                                ":///absolute/dir");
  }
  ORDO_RETURN_IF_ERROR(url.CheckQuery({"durable"}));
  const std::string durable = url.QueryOr("durable", "0");
  if (durable != "0" && durable != "1") {
    return InvalidArgumentError("'" + url.Masked() + "': durable must be 0 or 1, not '" +
                                durable + "'");
  }
  std::string path = url.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto dir = OpenLockDirectory(path);
  if (!dir.ok()) return dir.status();
  auto fenced = OpenSubdirectory(dir->get(), ".fenced", path);
  if (!fenced.ok()) return fenced.status();
  auto objects = OpenSubdirectory(dir->get(), ".objects", path);
  if (!objects.ok()) return objects.status();
  return std::unique_ptr<Locker>(new FileLocker(main, std::move(path), durable == "1",
                                                std::move(*dir), std::move(*fenced),
                                                std::move(*objects)));
}

}  // namespace ordo::local
