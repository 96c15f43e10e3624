// Several `ordo serve` replicas on one PostgreSQL (README "Running several replicas"):
//
// - two replicas against one: 8 clients on distinct names doing acquire+release through
//   `ordo serve` on postgresql:// cas; the baseline is one replica carrying all 8, the ordo side
//   two replicas with the clients spread over both, same run, same database, in alternating
//   rounds so that the shared machine's slow moments hit both alike;
// - the failover window: a primary with a synchronous standby, one `ordo serve` on the
//   multi-host URL (target_session_attrs=read-write), a client acquiring in a loop; the primary
//   crashes (pg_ctl stop -m immediate) and the standby is promoted at once. The figure is the
//   time from the crash to the client's first successful acquire, over 5 crashes; the baseline
//   is a client on the same URL directly (the library without ordo serve) in the same crashes.
//   Not in --smoke.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends.h"
#include "ordo/ordo.h"

#if __has_include("pg_cluster.h")
#define ORDO_BENCH_HAVE_PG_REPLICAS 1
#include "pg_cluster.h"
#endif

namespace ordo::bench {
namespace {

using std::chrono::milliseconds;

constexpr const char* kTwoLabel = "replicas: 2 × ordo serve vs 1 (postgresql:// cas)";
constexpr const char* kFailoverLabel = "replicas: failover (postgresql:// cas, sync standby)";

bool ReplicaRowsAvailable(const Config& cfg, Row* row) {
  if (SchemeRegistered("http") && SchemeRegistered("postgresql") && !cfg.ordo_binary.empty()) {
#ifdef ORDO_BENCH_HAVE_PG_REPLICAS
    return true;
#endif
  }
  row->ordo = Sample::NotAvailable("n/a (backend not built)");
  row->baseline = Sample::NotAvailable("—");
  return false;
}

#ifdef ORDO_BENCH_HAVE_PG_REPLICAS

// Acquire+release pairs, client c on urls[c % urls.size()], each client its own name.
Sample SpreadPairs(const Config& cfg, const std::vector<std::string>& urls, int clients,
                   const std::string& tag) {
  std::vector<std::unique_ptr<Locker>> lockers;
  for (int c = 0; c < clients; ++c) {
    auto locker = Open(urls[static_cast<std::size_t>(c) % urls.size()]);
    if (!locker.ok()) return Sample::Error("Open: " + locker.status().message());
    lockers.push_back(std::move(*locker));
  }
  return MeasurePairs(cfg, lockers, tag);
}

Row TwoReplicasRow(const Config& cfg) {
  constexpr int kClients = 8;
  Row row;
  row.backend = kTwoLabel;
  row.scenario = ScenarioName(Scenario::kPair, kClients) + ", spread over both";
  row.clients = kClients;
  row.baseline_name = "one ordo serve, the same 8 clients";
  if (!ReplicaRowsAvailable(cfg, &row)) return row;
  std::string url;
  try {
    url = testing::SharedPgCluster().Url("cas");
  } catch (const std::exception& e) {
    row.ordo = Sample::Error(std::string("PostgreSQL cluster: ") + e.what());
    return row;
  }
  OrdoServe first(cfg, url);
  OrdoServe second(cfg, url);
  if (!first.error().empty() || !second.error().empty()) {
    row.ordo = Sample::Error(first.error().empty() ? second.error() : first.error());
    return row;
  }
  // Alternating rounds (one, two, two, one, …) against drift on the shared machine.
  const int rounds = cfg.smoke ? 1 : cfg.quick ? 2 : 6;
  Config round_cfg = cfg;
  round_cfg.seconds = 2 * cfg.seconds / rounds;
  std::vector<Sample> one, two;
  for (int r = 0; r < rounds; ++r) {
    const bool two_first = r % 4 == 1 || r % 4 == 2;
    for (int side = 0; side < 2; ++side) {
      const bool use_two = (side == 0) == two_first;
      const std::string tag = "repl-r" + std::to_string(r) + (use_two ? "-two" : "-one");
      (use_two ? two : one)
          .push_back(use_two ? SpreadPairs(round_cfg, {first.url(), second.url()}, kClients, tag)
                             : SpreadPairs(round_cfg, {first.url()}, kClients, tag));
    }
  }
  row.ordo = Merge(two);
  row.baseline = Merge(one);
  row.detail =
      "The sides alternate in rounds (one, two, two, one, …) against the same database; both "
      "replicas stay up throughout. Each side is 8 client threads, its replica(s) and PostgreSQL "
      "(one commit per acquire and per release, fsync on) on the same cores, so a second "
      "replica cannot add capacity here: it shows the overhead of the second process. The "
      "bottleneck is CPU: `top` during a two-replica round (2 cores, a CI run beside it) showed "
      "the cores 95% busy, PostgreSQL's backends about half of them (≈ 100% of 200%), the two "
      "`ordo serve` about 57%, the bench's 8 clients about 21%; disk wait under 1%.";
  return row;
}

// A client acquiring fresh names in a loop on its own thread, until destroyed. It records the
// first success of an acquire begun after Crashed(). Thread-safe.
class LoopingClient {
 public:
  LoopingClient(std::unique_ptr<Locker> locker, std::string tag)
      : locker_(std::move(locker)), tag_(std::move(tag)), thread_([this] { Loop(); }) {}
  ~LoopingClient() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    thread_.join();
  }
  // Until one acquire succeeded (before the crash), at most `timeout`.
  bool WaitWarm(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return warm_; });
  }
  void Crashed(double at) { crash_at_.store(at); }
  // Seconds from the crash to the first success begun after it, or < 0 after `timeout`.
  double WaitRecovered(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return first_after_ >= 0; })) return -1;
    return first_after_ - crash_at_.load();
  }
  std::string last_error() {
    std::lock_guard lock(mu_);
    return last_error_;
  }

 private:
  void Loop() {
    for (int i = 0;; ++i) {
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
      }
      // A fresh name each time: a release in flight at the crash leaves its lease held until
      // its TTL, which would measure the TTL, not the failover.
      const double began = NowSeconds();
      auto lease = locker_->Acquire(
          {.name = BenchName(tag_ + "-" + std::to_string(i)), .ttl = milliseconds(30'000)});
      const double done = NowSeconds();
      if (lease.ok()) (void)locker_->Release(*lease);
      std::lock_guard lock(mu_);
      if (lease.ok()) {
        warm_ = true;
        if (began >= crash_at_.load() && first_after_ < 0) first_after_ = done;
      } else {
        last_error_ = lease.status().message();
      }
      cv_.notify_all();
    }
  }

  std::unique_ptr<Locker> locker_;
  std::string tag_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool warm_ = false;
  double first_after_ = -1;
  std::string last_error_;
  std::atomic<double> crash_at_{std::numeric_limits<double>::infinity()};
  std::thread thread_;  // last: started once every member above exists
};

// One crash, in microseconds: crash to first acquire through `ordo serve`, the same for a
// client on the postgresql:// URL directly (no ordo serve), and crash to promoted.
struct Crash {
  double serve_us = -1;
  double direct_us = -1;
  double promote_us = -1;
  std::string error;
};

Crash OneFailover(const Config& cfg, testing::PgCluster& primary, testing::PgCluster& standby,
                  int round) {
  Crash out;
  // libpq's multi-host form; connect_timeout bounds a dead host's connect, statement_timeout a
  // call stuck on a primary that went away.
  const std::string url = "postgresql://ordo:" + primary.password() + "@127.0.0.1:" +
                          std::to_string(primary.port()) + ",127.0.0.1:" +
                          std::to_string(standby.port()) +
                          "/ordo_test?strategy=cas&target_session_attrs=read-write"
                          "&connect_timeout=2&statement_timeout=5s";
  OrdoServe serve(cfg, url);
  if (!serve.error().empty()) {
    out.error = serve.error();
    return out;
  }
  auto via_serve = Open(serve.url());
  auto direct = Open(url);
  if (!via_serve.ok() || !direct.ok()) {
    out.error = "Open: " + (via_serve.ok() ? direct : via_serve).status().message();
    return out;
  }
  const std::string tag = "fo" + std::to_string(round);
  LoopingClient serve_client(std::move(*via_serve), tag + "-serve");
  LoopingClient direct_client(std::move(*direct), tag + "-direct");
  for (LoopingClient* c : {&serve_client, &direct_client}) {
    if (!c->WaitWarm(std::chrono::seconds(20))) {
      out.error = "no acquire succeeded before the crash: " + c->last_error();
      return out;
    }
  }
  try {
    primary.StopImmediate();
    const double crashed = NowSeconds();
    serve_client.Crashed(crashed);
    direct_client.Crashed(crashed);
    standby.Promote();
    out.promote_us = (NowSeconds() - crashed) * 1e6;
  } catch (const std::exception& e) {
    out.error = e.what();
    return out;
  }
  const double serve_s = serve_client.WaitRecovered(std::chrono::seconds(30));
  const double direct_s = direct_client.WaitRecovered(std::chrono::seconds(30));
  if (serve_s < 0 || direct_s < 0) {
    out.error = std::string("no acquire succeeded within 30 s of the crash ") +
                (serve_s < 0 ? "through ordo serve: " + serve_client.last_error()
                             : "directly: " + direct_client.last_error());
    return out;
  }
  out.serve_us = serve_s * 1e6;
  out.direct_us = direct_s * 1e6;
  return out;
}

std::string Millis(const std::vector<double>& us) {
  std::string out;
  for (double u : us) out += (out.empty() ? "" : ", ") + std::to_string(static_cast<int>(u / 1000));
  return out + " ms";
}

Row FailoverRow(const Config& cfg) {
  constexpr int kCrashes = 5;
  Row row;
  row.backend = kFailoverLabel;
  row.scenario = "crash → first acquire via ordo serve, p50 of " + std::to_string(kCrashes) +
                 " crashes";
  row.clients = 1;
  row.kind = RowKind::kLatency;
  row.baseline_name = "the same loop on the postgresql:// URL directly, same crashes";
  if (!ReplicaRowsAvailable(cfg, &row)) return row;
  if (cfg.smoke) {
    row.ordo = Sample::NotAvailable("n/a (not in --smoke: 5 crashes and standbys)");
    row.baseline = Sample::NotAvailable("—");
    return row;
  }
  std::vector<double> serve_us, direct_us, promote_us;
  try {
    // A chain: after each failover the promoted standby is the primary and gets a new
    // synchronous standby (pg_basebackup before synchronous_standby_names is set, so the new
    // standby does not inherit it).
    auto primary = std::make_unique<testing::PgCluster>();
    auto standby = testing::PgCluster::StandbyOf(*primary, "bench_standby0");
    primary->MakeSynchronous("bench_standby0");
    for (int r = 0; r < kCrashes; ++r) {
      Crash crash = OneFailover(cfg, *primary, *standby, r);
      if (!crash.error.empty()) {
        row.ordo = Sample::Error("crash " + std::to_string(r + 1) + ": " + crash.error);
        return row;
      }
      serve_us.push_back(crash.serve_us);
      direct_us.push_back(crash.direct_us);
      promote_us.push_back(crash.promote_us);
      if (r + 1 == kCrashes) break;
      const std::string name = "bench_standby" + std::to_string(r + 1);
      auto next = testing::PgCluster::StandbyOf(*standby, name);
      standby->MakeSynchronous(name);
      primary = std::move(standby);
      standby = std::move(next);
    }
  } catch (const std::exception& e) {
    row.ordo = Sample::Error(std::string("PostgreSQL with a standby: ") + e.what());
    return row;
  }
  const std::string serve_each = Millis(serve_us);
  const std::string direct_each = Millis(direct_us);
  const std::string promote_each = Millis(promote_us);
  Percentiles(serve_us, &row.ordo);  // sorts
  Percentiles(direct_us, &row.baseline);
  row.detail =
      "Each crash: `pg_ctl stop -m immediate` of the primary (the clock starts when it returns), "
      "then at once `pg_ctl promote -w` of the synchronous standby; two clients loop "
      "acquire+release on fresh names meanwhile, one through `ordo serve` on the multi-host URL "
      "(target_session_attrs=read-write, connect_timeout=2), one on that URL directly. The "
      "figure is crash → first successful acquire begun after the crash.\n"
      "through ordo serve: " + serve_each + " (p50 " +
      std::to_string(static_cast<int>(row.ordo.p50_us / 1000)) + " ms, max " +
      std::to_string(static_cast<int>(serve_us.back() / 1000)) + " ms)\n"
      "direct postgresql://: " + direct_each + "\n"
      "crash → pg_ctl promote -w returned: " + promote_each +
      " (pg_ctl polls, so it returns after the new primary already accepts writes)\n"
      "With 5 samples p99 is the maximum.";
  return row;
}

#endif  // ORDO_BENCH_HAVE_PG_REPLICAS

}  // namespace

void RunReplicaRows(const Config& cfg, Table& table) {
  const auto wanted = [&](const char* label) {
    return cfg.only.empty() || std::string(label).find(cfg.only) != std::string::npos;
  };
#ifdef ORDO_BENCH_HAVE_PG_REPLICAS
  if (wanted(kTwoLabel)) table.Add(TwoReplicasRow(cfg));
  if (wanted(kFailoverLabel)) table.Add(FailoverRow(cfg));
#else
  for (const char* label : {kTwoLabel, kFailoverLabel}) {
    if (!wanted(label)) continue;
    Row row;
    row.backend = label;
    row.scenario = "—";
    ReplicaRowsAvailable(cfg, &row);
    table.Add(std::move(row));
  }
#endif
}

}  // namespace ordo::bench
