// ordo's side of every scenario, written once against the Locker interface: the same code
// measures inproc:, flock://, sqlite://, postgresql:// and http://.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "backends.h"
#include "ordo/ordo.h"

namespace ordo::bench {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kTtl{30'000};
constexpr milliseconds kLongWait{30'000};

// One Locker per client, as separate services would have (one connection each).
Result<std::vector<std::unique_ptr<Locker>>> OpenClients(const std::string& url, int clients) {
  std::vector<std::unique_ptr<Locker>> out;
  for (int i = 0; i < clients; ++i) {
    auto locker = Open(url);
    if (!locker.ok()) return locker.status();
    out.push_back(std::move(*locker));
  }
  return out;
}

Sample Pairs(const Config& cfg, std::vector<std::unique_ptr<Locker>>& lockers,
             const std::string& tag, bool contended) {
  const int clients = static_cast<int>(lockers.size());
  std::vector<std::string> names;
  for (int c = 0; c < clients; ++c) {
    names.push_back(BenchName(contended ? tag : tag + "-" + std::to_string(c)));
  }
  return RunClosedLoop(cfg, clients, [&](int c, std::string* error) {
    Locker& locker = *lockers[static_cast<std::size_t>(c)];
    const auto& name = names[static_cast<std::size_t>(c)];
    auto lease = locker.Acquire(
        {.name = name, .ttl = kTtl, .wait = contended ? kLongWait : milliseconds(0)});
    if (!lease.ok()) {
      *error = "acquire: " + lease.status().message();
      return false;
    }
    const Status released = locker.Release(*lease);
    if (!released.ok()) {
      *error = "release: " + released.message();
      return false;
    }
    return true;
  });
}

Sample Wake(const Config& cfg, std::vector<std::unique_ptr<Locker>>& lockers,
            std::chrono::microseconds block_delay, const std::string& tag) {
  const std::string name = BenchName(tag + "-wake");
  Lease held;     // the holder's lease (main thread)
  Lease waited;   // the waiter's lease (waiter thread; MeasureWake orders the accesses)
  WakeOps ops;
  ops.hold = [&](std::string* error) {
    auto lease = lockers[0]->Acquire({.name = name, .ttl = kTtl});
    if (!lease.ok()) *error = lease.status().message();
    if (lease.ok()) held = *lease;
    return lease.ok();
  };
  ops.wait = [&](std::string* error) {
    auto lease = lockers[1]->Acquire({.name = name, .ttl = kTtl, .wait = kLongWait});
    if (!lease.ok()) *error = lease.status().message();
    if (lease.ok()) waited = *lease;
    return lease.ok();
  };
  ops.unwait = [&](std::string* error) {
    const Status s = lockers[1]->Release(waited);
    if (!s.ok()) *error = s.message();
    return s.ok();
  };
  ops.release = [&](std::string* error) {
    const Status s = lockers[0]->Release(held);
    if (!s.ok()) *error = s.message();
    return s.ok();
  };
  return MeasureWake(cfg, ops, block_delay);
}

Sample Fenced(const Config& cfg, std::vector<std::unique_ptr<Locker>>& lockers,
              const std::string& tag) {
  const int clients = static_cast<int>(lockers.size());
  std::vector<std::uint64_t> tokens;
  std::vector<std::string> keys;
  std::vector<Lease> leases;
  for (int c = 0; c < clients; ++c) {
    auto lease = lockers[static_cast<std::size_t>(c)]->Acquire(
        {.name = BenchName(tag + "-fence-lock-" + std::to_string(c)), .ttl = milliseconds(600'000)});
    if (!lease.ok()) return Sample::Error("acquire for the token: " + lease.status().message());
    tokens.push_back(lease->token);
    leases.push_back(*lease);
    keys.push_back(BenchName(tag + "-fenced-" + std::to_string(c)));
  }
  const std::string data(64, 'x');
  Sample s = RunClosedLoop(cfg, clients, [&](int c, std::string* error) {
    const auto i = static_cast<std::size_t>(c);
    auto w = lockers[i]->fenced().Write(keys[i], data, tokens[i]);
    if (!w.ok()) *error = w.status().message();
    return w.ok();
  });
  for (int c = 0; c < clients; ++c) {
    lockers[static_cast<std::size_t>(c)]->Release(leases[static_cast<std::size_t>(c)]).IgnoreError();
  }
  return s;
}

Sample Cas(const Config& cfg, std::vector<std::unique_ptr<Locker>>& lockers,
           const std::string& tag) {
  const int clients = static_cast<int>(lockers.size());
  std::vector<std::uint64_t> versions(static_cast<std::size_t>(clients), 0);
  std::vector<std::string> keys;
  for (int c = 0; c < clients; ++c) keys.push_back(BenchName(tag + "-object-" + std::to_string(c)));
  const std::string value = R"({"state":"running","replicas":3})";
  return RunClosedLoop(cfg, clients, [&](int c, std::string* error) {
    const auto i = static_cast<std::size_t>(c);
    auto v = lockers[i]->objects().CompareAndSwap(keys[i], versions[i], value);
    if (!v.ok()) {
      *error = v.status().message();
      return false;
    }
    versions[i] = *v;
    return true;
  });
}

}  // namespace

std::string BenchName(const std::string& tag) {
  static const std::string prefix = "bench-" + std::to_string(getpid()) + "-";
  return prefix + tag;
}

std::string ScenarioName(Scenario scenario, int clients) {
  switch (scenario) {
    case Scenario::kPair:
      return clients == 1 ? "uncontended acquire+release" : "uncontended acquire+release, distinct names";
    case Scenario::kContended:
      return "contended acquire(wait)+release, one name";
    case Scenario::kWake:
      return "wake-up: release → waiter holds";
    case Scenario::kFenced:
      return "fenced write";
    case Scenario::kCas:
      return "CAS (VersionedStore)";
  }
  return "?";
}

bool SchemeRegistered(const std::string& scheme) {
  const auto schemes = RegisteredSchemes();
  return std::find(schemes.begin(), schemes.end(), scheme) != schemes.end();
}

Sample MeasureOrdo(const Config& cfg, const std::string& url, Scenario scenario, int clients,
                   std::chrono::microseconds block_delay) {
  auto lockers = OpenClients(url, scenario == Scenario::kWake ? 2 : clients);
  if (!lockers.ok()) return Sample::Error("Open: " + lockers.status().message());
  static std::atomic<int> run{0};
  const std::string tag = "s" + std::to_string(++run);
  switch (scenario) {
    case Scenario::kPair:
      return Pairs(cfg, *lockers, tag, /*contended=*/false);
    case Scenario::kContended:
      return Pairs(cfg, *lockers, tag, /*contended=*/true);
    case Scenario::kWake:
      return Wake(cfg, *lockers, block_delay, tag);
    case Scenario::kFenced:
      return Fenced(cfg, *lockers, tag);
    case Scenario::kCas:
      return Cas(cfg, *lockers, tag);
  }
  return Sample::Error("unknown scenario");
}

Sample MeasurePairs(const Config& cfg, std::vector<std::unique_ptr<Locker>>& lockers,
                    const std::string& tag) {
  return Pairs(cfg, lockers, tag, /*contended=*/false);
}

std::string BackendBench::NotAvailable(const Config&) const {
  return SchemeRegistered(scheme()) ? "" : "n/a (backend not built)";
}

void RunBackend(const Config& cfg, BackendBench& backend, Table& table) {
  struct Planned {
    Scenario scenario;
    int clients;
  };
  std::vector<Planned> plan;
  for (Scenario s : backend.scenarios()) {
    switch (s) {
      case Scenario::kPair:
        plan.push_back({s, 1});
        plan.push_back({s, 8});
        break;
      case Scenario::kContended:
        plan.push_back({s, 8});
        break;
      default:
        plan.push_back({s, s == Scenario::kWake ? 1 : 1});
    }
  }
  auto add = [&](const Planned& p, Sample ordo, Baseline base) {
    Row row;
    row.backend = backend.label();
    row.scenario = ScenarioName(p.scenario, p.clients);
    row.clients = p.clients;
    row.kind = p.scenario == Scenario::kWake ? RowKind::kLatency : RowKind::kThroughput;
    row.ordo = std::move(ordo);
    row.baseline_name = std::move(base.name);
    row.baseline = std::move(base.sample);
    row.detail = std::move(base.detail);
    table.Add(std::move(row));
  };
  const std::string na = backend.NotAvailable(cfg);
  if (!na.empty()) {
    for (const auto& p : plan) add(p, Sample::NotAvailable(na), {"—", Sample::NotAvailable("—"), ""});
    return;
  }
  const std::string why = backend.Setup(cfg);
  if (!why.empty()) {
    for (const auto& p : plan) add(p, Sample::Error(why), {"—", Sample::NotAvailable("—"), ""});
    return;
  }
  // A full run alternates ordo and the baseline in rounds, so that a slow moment of the shared
  // machine (another build, a busy disk) hits both sides alike.
  const int rounds = cfg.quick || cfg.smoke ? 1 : 3;
  Config round_cfg = cfg;
  round_cfg.seconds = cfg.seconds / rounds;
  round_cfg.wake_iterations = std::max(1, cfg.wake_iterations / rounds);
  for (const auto& p : plan) {
    std::vector<Sample> ordo;
    std::vector<Sample> base;
    Baseline last;
    for (int r = 0; r < rounds; ++r) {
      ordo.push_back(MeasureOrdo(round_cfg, backend.url(), p.scenario, p.clients, backend.block_delay()));
      backend.SawOrdo(p.scenario, p.clients, ordo.back());
      last = backend.Measure(round_cfg, p.scenario, p.clients);
      base.push_back(std::move(last.sample));
    }
    last.sample = Merge(base);
    add(p, Merge(ordo), std::move(last));
  }
}

}  // namespace ordo::bench
