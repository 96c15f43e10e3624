// Semaphore rows of the database backends: limit-4 acquire(wait)+release by 8 clients on one
// name, on PostgreSQL (cas, version, for-update) and etcd, against the same backend's plain
// lock under the same load (8 clients, one name, acquire(wait)+release): what permits cost over
// a mutex of that backend. Both sides run in the same process, same run, same server.
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends.h"
#include "etcd_cluster.h"
#include "ordo/ordo.h"
#include "pg_cluster.h"

namespace ordo::bench {
namespace {

constexpr std::uint32_t kLimit = 4;
constexpr int kClients = 8;

// 8 clients, each its own Locker, acquire(wait) + release on one name with `limit`.
Sample MeasureLimit(const Config& cfg, const std::string& url, std::uint32_t limit) {
  std::vector<std::unique_ptr<Locker>> lockers;
  for (int c = 0; c < kClients; ++c) {
    auto opened = Open(url);
    if (!opened.ok()) return Sample::Error(opened.status().ToString());
    lockers.push_back(std::move(*opened));
  }
  const LockRequest request{.name = BenchName(limit > 1 ? "semdb" : "mutexdb"),
                            .ttl = std::chrono::seconds(30),
                            .wait = std::chrono::seconds(60),
                            .limit = limit};
  return RunClosedLoop(cfg, kClients, [&](int c, std::string* err) {
    Locker& locker = *lockers[static_cast<std::size_t>(c)];
    auto lease = locker.Acquire(request);
    if (!lease.ok()) {
      *err = lease.status().ToString();
      return false;
    }
    Status s = locker.Release(*lease);
    if (!s.ok()) *err = s.ToString();
    return s.ok();
  });
}

void AddRow(const Config& cfg, Table& table, const std::string& label, const std::string& url) {
  std::fprintf(stderr, "semaphore %s\n", label.c_str());
  Row row{.backend = label,
          .scenario = "semaphore limit 4: acquire(wait)+release, one name",
          .clients = kClients,
          .baseline_name = "the same backend's plain lock, acquire(wait)+release, one name"};
  row.ordo = MeasureLimit(cfg, url, kLimit);
  row.baseline = MeasureLimit(cfg, url, 1);
  table.Add(std::move(row));
}

}  // namespace

void RunSemaphoreDbRows(const Config& cfg, Table& table) {
  if (SchemeRegistered("postgresql")) {
    for (const char* strategy : {"cas", "version", "for-update"}) {
      AddRow(cfg, table, std::string("postgresql:// ") + strategy,
             testing::SharedPgCluster().Url(strategy));
    }
  }
  if (SchemeRegistered("etcd")) {
    testing::EtcdCluster etcd(1);
    AddRow(cfg, table, "etcd://", etcd.Url());
  }
}

}  // namespace ordo::bench
