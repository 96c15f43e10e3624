// Semaphore rows: limit-4 acquire(wait)+release by 8 clients on one name, on every local
// backend, SQLite and http:// (ordo serve on inproc:), against std::counting_semaphore<4> (the
// same shape with no tokens, slots or storage). A backend that has no permits yet reports n/a.
// PostgreSQL and etcd have their rows in rows_semaphore_db.cc, against their own plain lock.
#include <cstdio>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include "backends.h"
#include "ordo/ordo.h"
#include "temp_dir.h"

namespace ordo::bench {

namespace {

constexpr std::uint32_t kLimit = 4;
constexpr int kClients = 8;

// One row on `url`; an empty url is an error row carrying `error` (n/a when it says so).
Row SemaphoreRow(const Config& cfg, const std::string& label, const std::string& url,
                 std::string error) {
  Row row{.backend = label,
          .scenario = "semaphore limit 4: acquire(wait)+release, one name",
          .clients = kClients,
          .baseline_name = "std::counting_semaphore<4> acquire+release"};
  std::vector<std::unique_ptr<Locker>> lockers;
  for (int c = 0; c < kClients && error.empty(); ++c) {
    auto opened = Open(url);
    if (!opened.ok()) {
      error = opened.status().ToString();
    } else {
      lockers.push_back(std::move(*opened));
    }
  }
  const std::string name = BenchName("sem");
  LockRequest request{.name = name, .ttl = std::chrono::seconds(30),
                      .wait = std::chrono::seconds(60), .limit = kLimit};
  if (error.empty()) {
    auto probe = lockers[0]->Acquire(request);
    if (!probe.ok()) {
      error = probe.status().message();
    } else {
      lockers[0]->Release(*probe).IgnoreError();
    }
  }
  if (!error.empty()) {
    row.ordo = error.find("not supported by this backend yet") != std::string::npos
                   ? Sample::NotAvailable("n/a (no semaphores on this backend yet)")
               : error.rfind("n/a", 0) == 0 ? Sample::NotAvailable(error)
                                            : Sample::Error(error);
  } else {
    row.ordo = RunClosedLoop(cfg, kClients, [&](int c, std::string* err) {
      auto lease = lockers[static_cast<std::size_t>(c)]->Acquire(request);
      if (!lease.ok()) {
        *err = lease.status().ToString();
        return false;
      }
      Status s = lockers[static_cast<std::size_t>(c)]->Release(*lease);
      if (!s.ok()) *err = s.ToString();
      return s.ok();
    });
  }
  std::counting_semaphore<kLimit> sem(kLimit);
  row.baseline = RunClosedLoop(
      cfg, kClients,
      [&](int, std::string*) {
        sem.acquire();
        sem.release();
        return true;
      },
      /*time_ops=*/false);
  return row;
}

}  // namespace

void RunSemaphoreRows(const Config& cfg, Table& table) {
  std::fprintf(stderr, "semaphore\n");
  testing::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> urls = {
      {"inproc:", "inproc:"},
      {"flock://", "flock://" + dir.path() + "/flock"},
      {"fcntl://", "fcntl://" + dir.path() + "/fcntl"},
      {"sqlite:// cas", "sqlite://" + dir.path() + "/sem.db?strategy=cas"},
      {"sqlite:// version", "sqlite://" + dir.path() + "/sem.db?strategy=version"}};
  for (const auto& [label, url] : urls) table.Add(SemaphoreRow(cfg, label, url, ""));
  // http:// through a real `ordo serve` on inproc:, as the http:// rows run it.
  const std::string label = "http:// (ordo serve on inproc:)";
  if (!SchemeRegistered("http") || cfg.ordo_binary.empty()) {
    table.Add(SemaphoreRow(cfg, label, "", "n/a (backend not built)"));
  } else {
    OrdoServe serve(cfg, "inproc:");
    table.Add(SemaphoreRow(cfg, label, serve.error().empty() ? serve.url() : "", serve.error()));
  }
}

}  // namespace ordo::bench
