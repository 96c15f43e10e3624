// `ordo run`: take the lock, run the job under it, keep the lease alive, release after the job.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "backend_loader.h"
#include "commands.h"
#include "defaults.h"
#include "ordo/election.h"
#include "ordo/names.h"
#include "ordo/registry.h"
#include "ordo/scoped_lease.h"
#include "process.h"
#include "token_floor.h"

extern char** environ;

namespace ordo::cli {
namespace {

using Clock = std::chrono::steady_clock;

// A close-on-exec pipe; the read end polls readable once anything was written.
class Pipe {
 public:
  Pipe() {
    if (pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) fds_[0] = fds_[1] = -1;
  }
  ~Pipe() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  bool ok() const { return fds_[0] >= 0; }
  int read_fd() const { return fds_[0]; }
  void Notify() const {
    const char byte = 'x';
    if (write(fds_[1], &byte, 1) < 0) {
      // Full (already notified) or closed: either way the reader has its wake-up.
    }
  }

 private:
  int fds_[2] = {-1, -1};
};

// The acquisition runs on its own thread so that the main thread can keep watching signals:
// a SIGTERM during `-w 10m` must end the wait now, not when the backend gives up.
struct AcquireSlot {
  std::mutex mu;
  bool abandoned = false;                     // guarded by mu
  std::optional<Result<ScopedLease>> result;  // guarded by mu
  Clock::time_point acquired_at;              // guarded by mu
  Pipe done;
};

enum class WaitEnd { kDone, kSignal };

// Waits for the acquisition or for a forwarded signal. On a signal the acquiring thread is
// abandoned; the caller must then leave the process without unwinding (the thread still uses
// the Locker). A lease granted in that very instant is released by the thread if it gets the
// time, else lives until its TTL (fd-bound locks end with the process).
WaitEnd AwaitAcquisition(const std::shared_ptr<AcquireSlot>& slot, SignalWatch& signals,
                         int* signal_out) {
  while (true) {
    pollfd fds[2] = {{signals.fd(), POLLIN, 0}, {slot->done.read_fd(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return WaitEnd::kDone;
    if (fds[1].revents != 0) return WaitEnd::kDone;
    for (int sig = signals.Take(); sig != 0; sig = signals.Take()) {
      if (sig == SIGCHLD) continue;
      std::lock_guard<std::mutex> lock(slot->mu);
      if (slot->result.has_value()) {
        // Granted just now: release it properly before exiting.
        *signal_out = sig;
        return WaitEnd::kSignal;
      }
      slot->abandoned = true;
      *signal_out = sig;
      return WaitEnd::kSignal;
    }
  }
}

std::vector<std::string> JobEnvironment(const std::string& lock_name, std::uint64_t token,
                                       std::optional<std::uint32_t> slot, bool leader) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("ORDO_LOCK_NAME=") || entry.starts_with("ORDO_FENCING_TOKEN=") ||
        entry.starts_with("ORDO_LOCK_SLOT=") || entry.starts_with("ORDO_LEADER_TERM=")) {
      continue;
    }
    env.emplace_back(entry);
  }
  env.push_back("ORDO_LOCK_NAME=" + lock_name);
  env.push_back("ORDO_FENCING_TOKEN=" + std::to_string(token));
  if (slot) env.push_back("ORDO_LOCK_SLOT=" + std::to_string(*slot));
  // An election's term is its fencing token.
  if (leader) env.push_back("ORDO_LEADER_TERM=" + std::to_string(token));
  return env;
}

// "ordo run" or "ordo elect": the prefix of every message the command writes, so that a log
// line names the command the user typed.
std::string_view CommandName(const RunOptions& o) { return o.election ? "ordo elect" : "ordo run"; }

int OrdoError(std::string_view command, const std::string& message) {
  spdlog::error("{}: {}", command, message);
  return kExitOrdoError;
}

int ExitCodeForStartFailure(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kInvalidArgument:
      return kExitCannotExecute;
    default:
      return kExitOrdoError;
  }
}

// --hold-at-least: renew to the time that is left and let the lease expire by itself, as
// ShedLock's lockAtLeastFor does; ordo need not stay around. Returns the exit code.
int HoldAndExit(Locker& locker, ScopedLease& scoped, const RunOptions& o,
                Clock::time_point acquired_at, int job_code) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(
      acquired_at + o.hold_at_least - Clock::now());
  auto lease = scoped.Detach();
  if (!lease.ok()) return o.lost_exit_code;
  auto held = locker.Renew(*lease, std::max(left, kMinTtl));
  if (!held.ok()) {
    spdlog::warn("ordo run: could not keep lock '{}' for --hold-at-least: {}", lease->name,
                 held.status().ToString());
    if (held.status().code() == StatusCode::kLeaseLost) return o.lost_exit_code;
  }
  return job_code;
}

// Migration from ordo 0.1's session-dependent lock directories (see LegacyLocksOf): takes the
// old lock of every legacy directory that still has one for the name, in a fixed order (an old
// ordo takes one of them only, so no two processes wait for each other in a cycle), then makes
// the new lock's tokens start above the old ones, then takes the new lock. The legacy leases
// end when their Lockers are destroyed or ordo exits. `wait` bounds the whole.
Result<ScopedLease> AcquireMigrating(Locker& locker, const std::string& dir,
                                     const std::vector<std::unique_ptr<Locker>>& legacy,
                                     const std::vector<std::string>& legacy_dirs,
                                     LockRequest request, const ScopedLease::Options& options) {
  const auto deadline = Clock::now() + request.wait;
  auto left = [deadline] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
  };
  std::uint64_t floor = 0;
  for (std::size_t i = 0; i < legacy.size(); ++i) {
    request.wait = left();
    auto old = legacy[i]->Acquire(request);
    if (!old.ok()) {
      const Status& s = old.status();
      if (s.code() != StatusCode::kLockHeld) return s;
      return LockHeldError(s.message() + " (in the old lock directory " + legacy_dirs[i] +
                           ", by an ordo before 0.2 or one migrating from it)");
    }
    floor = std::max(floor, old->token);
  }
  if (floor > 0) ORDO_RETURN_IF_ERROR(local::RaiseTokenFloor(dir, request.name, floor));
  request.wait = left();
  return ScopedLease::Acquire(locker, request, options);
}

}  // namespace

int RunCommand(const RunOptions& o) {
  const std::string_view command = CommandName(o);
  auto signals = SignalWatch::Create();
  if (!signals.ok()) return OrdoError(command, signals.status().message());
  if (o.verbose) spdlog::set_level(spdlog::level::debug);

  const std::string name = o.lock.empty() ? DefaultLockName(o.command) : o.lock;
  if (Status valid = ValidateName(name, o.election ? "election name" : "lock name"); !valid.ok()) {
    return OrdoError(command, valid.message());
  }
  if (o.election && !o.owner.empty()) {
    if (Status valid = ValidateCandidate(o.owner); !valid.ok()) return OrdoError(command, valid.message());
  }
  std::string url = o.backend;
  std::string dir;  // the default lock directory, when no backend was given
  if (url.empty()) {
    auto fallback = DefaultRunDir();
    if (!fallback.ok()) return OrdoError(command, fallback.status().message());
    dir = *fallback;
    url = "flock://" + UrlPath(dir);
  }
  auto opened = OpenBackend(url);
  if (!opened.ok()) return OrdoError(command, opened.status().message());
  Locker& locker = **opened;
  const LockerTraits traits = locker.traits();
  if (o.hold_at_least.count() > 0 && !traits.expires_by_ttl) {
    return OrdoError(command, "--hold-at-least needs a lease backend (sqlite://, postgresql:// cas or "
                     "version, http://): the locks of '" +
                     url + "' end when ordo exits");
  }
  // The old default directories' locks, while they exist (see AcquireMigrating). A semaphore
  // (limit > 1) is new in 0.2: no old ordo ever held its name.
  std::vector<std::string> legacy_dirs;
  std::vector<std::unique_ptr<Locker>> legacy;
  if (!dir.empty()) {
    for (std::string& old_dir : LegacyLocksOf(name)) {
      auto old = Open("flock://" + UrlPath(old_dir));
      if (!old.ok()) return OrdoError(command, old.status().message());
      legacy.push_back(std::move(*old));
      legacy_dirs.push_back(std::move(old_dir));
    }
  }

  Pipe lost;
  if (!lost.ok()) return OrdoError(command, std::string("pipe2: ") + std::strerror(errno));
  ScopedLease::Options lease_options;
  // fd-bound locks cannot be lost while ordo lives: nothing to renew, nothing to watch.
  lease_options.keep_alive = traits.expires_by_ttl;
  lease_options.fence_early = o.kill_grace;
  lease_options.on_lost = [&lost](const Status&) { lost.Notify(); };
  const LockRequest request{name, o.mode, o.ttl, o.wait, o.owner, o.limit};
  // A semaphore (limit > 1) or an election is new in 0.2: no old ordo ever held its name.
  if (request.limit != 1 || o.election) legacy.clear();
  const bool forever = o.election && o.wait == kMaxWait;

  auto slot = std::make_shared<AcquireSlot>();
  std::thread acquirer([slot, &locker, &dir, &legacy, &legacy_dirs, request, lease_options,
                        forever] {
    auto result = legacy.empty()
                      ? ScopedLease::Acquire(locker, request, lease_options)
                      : AcquireMigrating(locker, dir, legacy, legacy_dirs, request, lease_options);
    // `ordo elect` campaigns with no end: kMaxWait at a time.
    while (forever && !result.ok() && result.status().code() == StatusCode::kLockHeld) {
      {
        std::lock_guard<std::mutex> lock(slot->mu);
        if (slot->abandoned) return;
      }
      result = ScopedLease::Acquire(locker, request, lease_options);
    }
    std::lock_guard<std::mutex> lock(slot->mu);
    if (slot->abandoned) return;  // releases the lease, if any, on the way out
    slot->result.emplace(std::move(result));
    slot->acquired_at = Clock::now();
    slot->done.Notify();
  });
  int sig = 0;
  if (AwaitAcquisition(slot, **signals, &sig) == WaitEnd::kSignal) {
    bool granted = false;
    {
      std::lock_guard<std::mutex> lock(slot->mu);
      granted = slot->result.has_value();
    }
    if (!granted) {
      // The acquiring thread may be inside the backend for as long as the wait: leave without
      // unwinding what it uses.
      spdlog::debug("{}: signal {} while waiting for lock '{}'", command, sig, name);
      std::fflush(nullptr);
      std::_Exit(128 + sig);
    }
    acquirer.join();
    return 128 + sig;  // the ScopedLease in the slot releases the lock
  }
  acquirer.join();
  std::optional<Result<ScopedLease>> acquired;
  Clock::time_point acquired_at;
  {
    std::lock_guard<std::mutex> lock(slot->mu);
    acquired = std::move(slot->result);
    acquired_at = slot->acquired_at;
  }
  if (!acquired->ok()) {
    const Status& s = acquired->status();
    if (s.code() == StatusCode::kLockHeld) {
      spdlog::debug("{}: {}", command, s.message());
      return o.conflict_exit_code;
    }
    return OrdoError(command, s.ToString());
  }
  ScopedLease& scoped = **acquired;
  spdlog::debug("{}: lock '{}' taken with token {}", command, name, scoped.token());
  if (scoped.lost()) return o.lost_exit_code;

  JobSpec spec;
  spec.argv = o.command;
  spec.env = JobEnvironment(name, scoped.token(),
                            o.limit > 1 ? std::optional<std::uint32_t>(scoped.lease().slot)
                                        : std::nullopt,
                            o.election);
  spec.mask = (*signals)->original_mask();
  spec.command = command;
  auto job = Job::Start(spec);
  if (!job.ok()) {
    spdlog::error("{}: {}", command, job.status().message());
    return ExitCodeForStartFailure(job.status());
  }
  SuperviseOptions supervise;
  supervise.lost_fd = lost.read_fd();
  supervise.kill_grace = o.kill_grace;
  supervise.command = command;
  supervise.lost_what = o.election ? "leadership of election '" + name + "' (term " +
                                         std::to_string(scoped.token()) + ")"
                                   : "the lease of lock '" + name + "'";
  if (lease_options.keep_alive) supervise.kill_by = [&scoped] { return scoped.fence_deadline(); };
  const JobOutcome outcome = Supervise(**job, **signals, supervise);
  // The sentinel holds copies of ordo's descriptors, the lock's among them: it must be gone
  // before the release, or an fd-bound lock would outlive it.
  job->reset();

  if (outcome.lost || scoped.lost()) {
    // The job is dead and the lease gone. Leave now: unwinding would join a renewal that may
    // hang for the backend's own timeout (a frozen server, a locked database).
    std::fflush(nullptr);
    std::_Exit(o.lost_exit_code);
  }
  const int code = ExitCodeOf(outcome.wait_status);
  if (o.hold_at_least.count() > 0 && Clock::now() < acquired_at + o.hold_at_least) {
    return HoldAndExit(locker, scoped, o, acquired_at, code);
  }
  Status released = scoped.Release();
  if (!released.ok()) {
    spdlog::warn("{}: releasing lock '{}': {}", command, name, released.ToString());
    if (released.code() == StatusCode::kLeaseLost) return o.lost_exit_code;
  }
  return code;
}

}  // namespace ordo::cli
