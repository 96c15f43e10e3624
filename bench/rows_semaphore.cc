// Semaphore rows: limit-4 acquire(wait)+release by 8 clients on one name, on every local
// backend and SQLite, against std::counting_semaphore<4> (the same shape with no tokens, slots
// or storage). A backend that has no permits yet reports n/a.
#include <cstdio>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include "backends.h"
#include "ordo/ordo.h"
#include "temp_dir.h"

namespace ordo::bench {

void RunSemaphoreRows(const Config& cfg, Table& table) {
  constexpr std::uint32_t kLimit = 4;
  constexpr int kClients = 8;
  std::fprintf(stderr, "semaphore\n");
  testing::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> urls = {
      {"inproc:", "inproc:"},
      {"flock://", "flock://" + dir.path() + "/flock"},
      {"fcntl://", "fcntl://" + dir.path() + "/fcntl"},
      {"sqlite:// cas", "sqlite://" + dir.path() + "/sem.db?strategy=cas"},
      {"sqlite:// version", "sqlite://" + dir.path() + "/sem.db?strategy=version"}};
  for (const auto& [label, url] : urls) {
    Row row{.backend = label,
            .scenario = "semaphore limit 4: acquire(wait)+release, one name",
            .clients = kClients,
            .baseline_name = "std::counting_semaphore<4> acquire+release"};
    std::vector<std::unique_ptr<Locker>> lockers;
    std::string error;
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
    table.Add(std::move(row));
  }
}

}  // namespace ordo::bench
