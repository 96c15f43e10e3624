// Election rows: leadership hand-over and Observe latency (ordo/election.h), each beside the
// same backend's own wake-up row measured in the same run, so the ratio says what the election
// adds to the wake-up it rides on (the target: within 1.5×, a ratio of 0.67 or more).
//
//   - resign → next leader: the leader resigns; t1 is when the waiting candidate's Campaign
//     returns with the leadership;
//   - death → next leader: the leader dies without resigning. On fd-bound backends (flock://)
//     its descriptors are closed, as at a process's death, and t0 is that moment; on lease
//     backends nothing renews, and t0 is the dead leadership's expiry (expires_at: the same
//     host's clock), so the row shows what follows the TTL, not the TTL itself;
//   - Observe: the leader resigns; t1 is when an observer's Observe(term, wait) returns;
//   - resign → next leader without keep-alive: what starting ScopedLease's two threads per
//     term adds to the first row.
// The baseline column is the backend's "wake-up: release → waiter holds" (Locker::Acquire with
// a wait), measured just before on the same URL.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends.h"
#include "ordo/ordo.h"
#include "temp_dir.h"

namespace ordo::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kLongWait{30'000};

// Resign → next leader, or → observer woken (`observe`), through MeasureWake. Without
// `keep_alive` the leaderships start no renewal threads: what the threads' start costs.
Sample HandOver(const Config& cfg, Locker& leader_locker, Locker& next_locker,
                std::chrono::microseconds block_delay, const std::string& name, bool observe,
                bool keep_alive = true) {
  Election leader_side(leader_locker, name);
  Election next_side(next_locker, name);
  std::optional<ScopedLease> leadership;  // main thread
  std::optional<ScopedLease> next;        // waiter thread (MeasureWake orders the accesses)
  std::uint64_t term = 0;                 // written by hold, read by the waiter after it
  WakeOps ops;
  ops.hold = [&](std::string* error) {
    auto won = leader_side.Campaign({.candidate = "leader",
                                     .ttl = std::chrono::seconds(30),
                                     .lease = {.keep_alive = keep_alive}});
    if (!won.ok()) {
      *error = won.status().ToString();
      return false;
    }
    term = won->token();
    leadership.emplace(std::move(*won));
    return true;
  };
  ops.wait = [&](std::string* error) {
    if (observe) {
      auto changed = next_side.Observe(term, kLongWait);
      if (!changed.ok()) *error = changed.status().ToString();
      if (changed.ok() && changed->term() == term) *error = "Observe returned without a change";
      return error->empty();
    }
    auto won = next_side.Campaign({.candidate = "next",
                                   .ttl = std::chrono::seconds(30),
                                   .wait = kLongWait,
                                   .lease = {.keep_alive = keep_alive}});
    if (!won.ok()) {
      *error = won.status().ToString();
      return false;
    }
    next.emplace(std::move(*won));
    return true;
  };
  ops.unwait = [&](std::string* error) {
    if (!next) return true;
    const Status s = next_side.Resign(*next);
    next.reset();
    if (!s.ok()) *error = s.ToString();
    return s.ok();
  };
  ops.release = [&](std::string* error) {
    const Status s = leader_side.Resign(*leadership);
    leadership.reset();
    if (!s.ok()) *error = s.ToString();
    return s.ok();
  };
  return MeasureWake(cfg, ops, block_delay);
}

// Death → next leader: `iterations` leaders that never resign, each replaced by a waiting
// candidate (one thread per iteration, started before t0).
Sample Death(const std::string& url, Locker& next_locker, std::chrono::microseconds block_delay,
             const std::string& name, int iterations) {
  Election next_side(next_locker, name);
  std::vector<double> latencies;
  for (int i = 0; i < iterations; ++i) {
    auto dying = Open(url);
    if (!dying.ok()) return Sample::Error("Open: " + dying.status().ToString());
    const bool by_ttl = (*dying)->traits().expires_by_ttl;
    Election leader_side(**dying, name);
    // No keep-alive: on a lease backend the leadership runs out kMinTtl after the campaign.
    auto won = leader_side.Campaign(
        {.candidate = "leader", .ttl = kMinTtl, .lease = {.keep_alive = false}});
    if (!won.ok()) return Sample::Error("campaign: " + won.status().ToString());
    std::optional<Result<ScopedLease>> next;
    std::chrono::system_clock::time_point took;
    std::thread waiter([&] {
      next.emplace(next_side.Campaign(
          {.candidate = "next", .ttl = std::chrono::seconds(30), .wait = kLongWait}));
      took = std::chrono::system_clock::now();
    });
    std::this_thread::sleep_for(block_delay);
    auto lease = won->Detach();  // never resigned, never renewed
    std::chrono::system_clock::time_point t0 = std::chrono::system_clock::now();
    if (by_ttl) {
      t0 = lease.ok() ? lease->expires_at : t0;
    } else {
      dying->reset();  // its descriptors close, as when the process dies
    }
    waiter.join();
    if (!next->ok()) return Sample::Error("next campaign: " + next->status().ToString());
    next_side.Resign(**next).IgnoreError();
    latencies.push_back(
        std::max(0.0, std::chrono::duration<double, std::micro>(took - t0).count()));
  }
  Sample s;
  Percentiles(latencies, &s);
  s.latencies_us = std::move(latencies);
  return s;
}

constexpr const char* kScenarios[] = {
    "election hand-over: resign → next leader",
    "election hand-over: death → next leader",
    "election Observe: resign → observer woken",
    "election hand-over: resign → next leader, no keep-alive threads"};

struct Target {
  std::string label;
  std::string url;    // empty: `error` says why not
  std::string error;
  std::chrono::microseconds block_delay{1000};
};

void AddRows(const Config& cfg, const Target& t, Table& table) {
  static int run = 0;
  const std::string tag = "e" + std::to_string(++run);
  const std::string baseline_name = "wake-up: release → waiter holds (same URL, same run)";
  std::vector<Row> rows;
  for (const char* s : kScenarios) {
    rows.push_back({.backend = t.label, .scenario = s, .clients = 1, .kind = RowKind::kLatency,
                    .baseline_name = baseline_name});
  }
  auto fail_all = [&](const Sample& why) {
    for (Row& r : rows) {
      r.ordo = why;
      r.baseline = Sample::NotAvailable("—");
      table.Add(std::move(r));
    }
  };
  if (t.url.empty()) return fail_all(Sample::Error(t.error));
  auto a = Open(t.url);
  auto b = Open(t.url);
  if (!a.ok() || !b.ok()) {
    return fail_all(Sample::Error("Open: " + (a.ok() ? b : a).status().ToString()));
  }
  const Sample wake = MeasureOrdo(cfg, t.url, Scenario::kWake, 1, t.block_delay);
  const bool by_ttl = (*a)->traits().expires_by_ttl;
  // A dead leader on a lease backend costs its TTL per sample: fewer of them.
  const int deaths = std::max(1, std::min(cfg.wake_iterations, by_ttl ? 10 : 40));
  rows[0].ordo = HandOver(cfg, **a, **b, t.block_delay, BenchName(tag + "-resign"), false);
  rows[1].ordo = Death(t.url, **b, t.block_delay, BenchName(tag + "-death"), deaths);
  rows[2].ordo = HandOver(cfg, **a, **b, t.block_delay, BenchName(tag + "-observe"), true);
  rows[3].ordo = HandOver(cfg, **a, **b, t.block_delay, BenchName(tag + "-bare"), false,
                          /*keep_alive=*/false);
  rows[3].detail = "Campaign with lease.keep_alive = false: no ScopedLease renewal and "
                   "watchdog threads started per term (the cost the first row includes)";
  rows[1].detail = by_ttl ? "t0 = the dead leadership's expires_at (TTL " +
                                std::to_string(kMinTtl.count()) + " ms, not renewed)"
                          : "t0 = the dead leader's Locker destroyed (its descriptors closed)";
  for (Row& r : rows) {
    r.baseline = wake;
    table.Add(std::move(r));
  }
}

}  // namespace

void RunElectionRows(const Config& cfg, Table& table) {
  std::fprintf(stderr, "election\n");
  testing::TempDir dir;
  std::vector<Target> targets = {
      {"inproc:", "inproc:"},
      {"flock://", "flock://" + dir.path() + "/flock"},
      {"sqlite:// cas", "sqlite://" + dir.path() + "/election.db?strategy=cas"}};
  for (Target& t : targets) AddRows(cfg, t, table);
  // Servers come from the backends' own bench setup, one at a time.
  for (auto* group : {&PostgresBackends, &EtcdBackends}) {
    for (auto& backend : group()) {
      if (backend->label() != "postgresql:// cas" && backend->label() != "etcd://") continue;
      Target t{.label = backend->label(), .block_delay = backend->block_delay()};
      t.error = backend->NotAvailable(cfg);
      if (t.error.empty()) t.error = backend->Setup(cfg);
      if (t.error.empty()) t.url = backend->url();
      if (t.url.empty() && t.error.rfind("n/a", 0) == 0) {
        // Not built here: documented, not an error.
        for (const char* s : kScenarios) {
          table.Add({.backend = t.label, .scenario = s, .kind = RowKind::kLatency,
                     .ordo = Sample::NotAvailable(t.error), .baseline_name = "—",
                     .baseline = Sample::NotAvailable("—")});
        }
        continue;
      }
      AddRows(cfg, t, table);
    }
  }
}

}  // namespace ordo::bench
