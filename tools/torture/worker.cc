// The worker: a lock-protected read-modify-write of one counter, forever, logging every step.
#include <signal.h>
#include <time.h>

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <memory>
#include <random>

#include "history.h"
#include "ordo/election.h"
#include "ordo/ordo.h"
#include "torture.h"

namespace ordo::torture {
namespace {

volatile std::sig_atomic_t g_stop = 0;

void OnTerm(int) { g_stop = 1; }

}  // namespace

bool StopRequested() { return g_stop != 0; }

void SleepFor(std::chrono::milliseconds d) {
  timespec ts{.tv_sec = static_cast<time_t>(d.count() / 1000),
              .tv_nsec = static_cast<long>(d.count() % 1000) * 1'000'000};
  nanosleep(&ts, nullptr);
}

namespace {

// The outcome of a store or lock call as the history records it. Only kStaleToken is a
// refusal; only errors that by contract change nothing are definite failures. Anything else —
// above all kUnavailable, a timeout — may have taken effect.
Phase PhaseOf(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return Phase::kOk;
    case StatusCode::kStaleToken:
      return Phase::kRefused;
    case StatusCode::kLockHeld:
    case StatusCode::kLeaseLost:
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kVersionMismatch:
      return Phase::kFail;
    case StatusCode::kUnavailable:
    case StatusCode::kInternal:
      return Phase::kInfo;
  }
  return Phase::kInfo;
}

std::string CodeOf(const Status& s) { return std::string(StatusCodeName(s.code())); }

class Worker {
 public:
  explicit Worker(const WorkerOptions& o) : o_(o), history_(o.history, o.name), rng_(o.seed) {}

  int Run() {
    while (!g_stop) {
      if (!locker_ && !Connect()) continue;
      if (o_.workload == Workload::kElection) {
        Term();
      } else {
        Cycle();
      }
    }
    return 0;
  }

 private:
  bool Connect() {
    auto opened = Open(o_.backend);
    if (!opened.ok()) {
      // The backend may be down (a restart): try again shortly.
      SleepFor(std::chrono::milliseconds(100));
      return false;
    }
    locker_ = std::move(*opened);
    return true;
  }

  void Cycle() {
    const bool strict = o_.mode == Mode::kStrict;
    const std::string lock_name = strict ? o_.lock : std::string();

    // A semaphore's invocation carries its limit, the grant the slot; the holder works on
    // its slot's counter.
    const bool semaphore = o_.workload == Workload::kSemaphore;
    const std::uint32_t limit = semaphore ? o_.permits : 1;
    std::uint64_t op = history_.Invoke(
        Fn::kAcquire, 0, 0, semaphore ? static_cast<std::int64_t>(limit) : -1, o_.lock);
    auto lease = locker_->Acquire({.name = o_.lock, .mode = LockMode::kExclusive,
                                   .ttl = o_.ttl, .wait = o_.wait, .limit = limit});
    if (!lease.ok()) {
      history_.Complete(op, Fn::kAcquire, PhaseOf(lease.status()), 0, 0, -1,
                        CodeOf(lease.status()));
      if (lease.status().code() != StatusCode::kLockHeld) {
        SleepFor(std::chrono::milliseconds(50));  // backend trouble: do not spin
      }
      return;
    }
    const std::uint64_t token = lease->token;
    history_.Complete(op, Fn::kAcquire, Phase::kOk, token, 0,
                      semaphore ? static_cast<std::int64_t>(lease->slot) : -1, "");
    const std::string key = semaphore ? SlotKey(o_.key, lease->slot) : o_.key;

    const bool fenced_read = o_.mode == Mode::kFencedReads || strict;
    const std::uint64_t read_token = fenced_read ? token : 0;
    op = history_.Invoke(Fn::kRead, token, read_token, -1, key);
    auto read = locker_->fenced().Read(key, read_token, lock_name);
    std::int64_t value = 0;
    if (read.ok()) {
      const std::string& data = read->data;
      const auto [end, ec] = std::from_chars(data.data(), data.data() + data.size(), value);
      if (ec != std::errc() || end != data.data() + data.size()) {
        history_.Complete(op, Fn::kRead, Phase::kFail, token, read_token, -1,
                          "unparsable counter");
        Release(*lease);
        return;
      }
      history_.Complete(op, Fn::kRead, Phase::kOk, token, read_token, value, "");
    } else if (read.status().code() == StatusCode::kNotFound) {
      history_.Complete(op, Fn::kRead, Phase::kOk, token, read_token, 0, "not_found");
    } else {
      history_.Complete(op, Fn::kRead, PhaseOf(read.status()), token, read_token, -1,
                        CodeOf(read.status()));
      Release(*lease);
      return;
    }

    // The window in which the lease may expire (ttl 300 ms, sleep up to 400 ms) and the
    // nemesis may pause or kill us.
    std::uniform_int_distribution<long> sleep_ms(0, o_.max_sleep.count());
    SleepFor(std::chrono::milliseconds(sleep_ms(rng_)));

    const std::uint64_t write_token =
        o_.mode == Mode::kControlUnfencedWrites ? kUnfencedToken : token;
    op = history_.Invoke(Fn::kWrite, token, write_token, value + 1, key);
    auto wrote = locker_->fenced().Write(key, std::to_string(value + 1), write_token,
                                         lock_name);
    history_.Complete(op, Fn::kWrite, wrote.ok() ? Phase::kOk : PhaseOf(wrote.status()), token,
                      write_token, value + 1, wrote.ok() ? "" : CodeOf(wrote.status()));
    Release(*lease);
  }

  // One term of a candidate: campaign; while leading, a few transitions of the state object
  // (Get, then the CAS from the version read); resign.
  void Term() {
    Election election(*locker_, o_.lock);
    std::uint64_t op = history_.Invoke(Fn::kAcquire, 0, 0, -1, o_.lock);
    auto leadership = election.Campaign({.candidate = o_.name, .ttl = o_.ttl, .wait = o_.wait});
    if (!leadership.ok()) {
      history_.Complete(op, Fn::kAcquire, PhaseOf(leadership.status()), 0, 0, -1,
                        CodeOf(leadership.status()));
      if (leadership.status().code() != StatusCode::kLockHeld) {
        SleepFor(std::chrono::milliseconds(50));  // backend trouble: do not spin
      }
      return;
    }
    const std::uint64_t term = leadership->token();
    history_.Complete(op, Fn::kAcquire, Phase::kOk, term, 0, -1, "");
    AnnounceLeader();
    std::uniform_int_distribution<int> transitions(1, 4);
    for (int left = transitions(rng_); left > 0 && !g_stop && !leadership->lost(); --left) {
      // The window in which the nemesis pauses the leader past its TTL: it wakes up deposed,
      // reads a fresh version and tries its transition.
      std::uniform_int_distribution<long> sleep_ms(0, o_.max_sleep.count());
      SleepFor(std::chrono::milliseconds(sleep_ms(rng_)));
      if (!Transition(term)) break;
    }
    op = history_.Invoke(Fn::kRelease, term, 0, -1, o_.lock);
    const Status s = election.Resign(*leadership);
    history_.Complete(op, Fn::kRelease, PhaseOf(s), term, 0, -1, s.ok() ? "" : CodeOf(s));
  }

  // Get, then the transition from the version read. false when the leader should stop.
  bool Transition(std::uint64_t term) {
    std::uint64_t op = history_.Invoke(Fn::kRead, term, 0, -1, o_.key);
    auto got = locker_->objects().Get(o_.key);
    std::uint64_t version = 0;
    std::string state = "running";
    if (got.ok()) {
      version = got->version;
      state = got->value;
    } else if (got.status().code() != StatusCode::kNotFound) {
      history_.Complete(op, Fn::kRead, PhaseOf(got.status()), term, 0, -1,
                        CodeOf(got.status()));
      return false;
    }
    history_.Complete(op, Fn::kRead, Phase::kOk, term, 0, static_cast<std::int64_t>(version),
                      "");
    // running -> upgrading -> running …, each state stamped with the term that set it.
    const std::string next =
        (state.starts_with("upgrading") ? "running" : "upgrading") + (" " + std::to_string(term));
    const bool fenced = o_.mode != Mode::kControlUnfencedCas;
    const std::uint64_t sent = fenced ? term : 0;
    op = history_.Invoke(Fn::kCas, term, sent, static_cast<std::int64_t>(version), o_.key);
    auto swapped =
        fenced ? locker_->objects().CompareAndSwap(o_.key, version, next, term,
                                                   o_.mode == Mode::kStrict ? o_.lock : "")
               : locker_->objects().CompareAndSwap(o_.key, version, next);
    history_.Complete(op, Fn::kCas, swapped.ok() ? Phase::kOk : PhaseOf(swapped.status()), term,
                      sent, swapped.ok() ? static_cast<std::int64_t>(*swapped) : -1,
                      swapped.ok() ? "" : CodeOf(swapped.status()));
    // Refused as stale: this leader is deposed (its keep-alive will say so too).
    return swapped.ok() || swapped.status().code() == StatusCode::kVersionMismatch;
  }

  // Tells the nemesis who leads (it pauses and kills mostly the leader): the name, written to
  // a temporary file renamed over the leader file, so that a reader never sees half a name.
  void AnnounceLeader() {
    if (o_.leader_file.empty()) return;
    const std::string tmp = o_.leader_file + "." + o_.name;
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    const bool written = write(fd, o_.name.data(), o_.name.size()) ==
                         static_cast<ssize_t>(o_.name.size());
    close(fd);
    if (written) std::rename(tmp.c_str(), o_.leader_file.c_str());
  }

  void Release(const Lease& lease) {
    const std::uint64_t op = history_.Invoke(Fn::kRelease, lease.token, 0, -1, o_.lock);
    const Status s = locker_->Release(lease);
    history_.Complete(op, Fn::kRelease, PhaseOf(s), lease.token, 0, -1, s.ok() ? "" : CodeOf(s));
  }

  const WorkerOptions& o_;
  HistoryWriter history_;
  std::mt19937_64 rng_;
  std::unique_ptr<Locker> locker_;
};

}  // namespace

int RunWorker(const WorkerOptions& options) {
  struct sigaction sa {};
  sa.sa_handler = OnTerm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  if (IsUserTable(options.mode)) return RunUserTableWorker(options);
  Worker worker(options);
  return worker.Run();
}

}  // namespace ordo::torture
