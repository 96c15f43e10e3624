// The worker: a lock-protected read-modify-write of one counter, forever, logging every step.
#include <signal.h>
#include <time.h>

#include <charconv>
#include <csignal>
#include <memory>
#include <random>

#include "history.h"
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
      Cycle();
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

    std::uint64_t op = history_.Invoke(Fn::kAcquire, 0, 0, -1, o_.lock);
    auto lease = locker_->Acquire({.name = o_.lock, .mode = LockMode::kExclusive,
                                   .ttl = o_.ttl, .wait = o_.wait});
    if (!lease.ok()) {
      history_.Complete(op, Fn::kAcquire, PhaseOf(lease.status()), 0, 0, -1,
                        CodeOf(lease.status()));
      if (lease.status().code() != StatusCode::kLockHeld) {
        SleepFor(std::chrono::milliseconds(50));  // backend trouble: do not spin
      }
      return;
    }
    const std::uint64_t token = lease->token;
    history_.Complete(op, Fn::kAcquire, Phase::kOk, token, 0, -1, "");

    const bool fenced_read = o_.mode == Mode::kFencedReads || strict;
    const std::uint64_t read_token = fenced_read ? token : 0;
    op = history_.Invoke(Fn::kRead, token, read_token, -1, o_.key);
    auto read = locker_->fenced().Read(o_.key, read_token, lock_name);
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
    op = history_.Invoke(Fn::kWrite, token, write_token, value + 1, o_.key);
    auto wrote = locker_->fenced().Write(o_.key, std::to_string(value + 1), write_token,
                                         lock_name);
    history_.Complete(op, Fn::kWrite, wrote.ok() ? Phase::kOk : PhaseOf(wrote.status()), token,
                      write_token, value + 1, wrote.ok() ? "" : CodeOf(wrote.status()));
    Release(*lease);
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
