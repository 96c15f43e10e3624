// ordo-sqlite-helper: a separate process for the SQLite-specific tests. Prints one line per event.
//
//   migrate URL                 waits for a line on stdin (so several start together), then
//                               ordo::sqlite::Migrate; prints "applied N version V"
//   pause-in-transaction PATH   plain SQLite: BEGIN IMMEDIATE, bumps every lock's last_token by
//                               1000000 and writes ~2 MB into `fenced` (more than the page cache,
//                               so uncommitted frames reach the WAL file), prints "paused" and
//                               waits to be killed — a writer dying mid-transaction
//   hammer URL NAME             acquire (ttl 300 ms), print "token T", fenced write under it,
//                               release; forever
//   group URL N                 N threads, each on its own name PREFIX-i ("group-i"): acquire
//                               (ttl 60 s), print "token group-i T" once the lease is returned,
//                               release; forever (concurrent writers share commits: group commit)
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#include <iostream>
#include <string>

#include "ordo/ordo.h"
#include "ordo_sqlite/sqlite.h"

namespace {

using namespace std::chrono_literals;

int Fail(const std::string& what) {
  std::cout << "error " << what << std::endl;
  return 3;
}

int Migrate(const std::string& url) {
  std::string go;
  std::getline(std::cin, go);
  auto report = ordo::sqlite::Migrate(url);
  if (!report.ok()) return Fail(report.status().ToString());
  std::cout << "applied " << report->applied.size() << " version " << report->to_version
            << std::endl;
  return 0;
}

int Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string what = std::string(sql) + ": " + (error ? error : "?");
    sqlite3_free(error);
    return Fail(what);
  }
  return 0;
}

int PauseInTransaction(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return Fail("open");
  }
  sqlite3_busy_timeout(db, 5000);
  if (Exec(db, "PRAGMA cache_size = 8") != 0) return 3;
  if (Exec(db, "BEGIN IMMEDIATE") != 0) return 3;
  if (Exec(db, "UPDATE locks SET last_token = last_token + 1000000") != 0) return 3;
  if (Exec(db,
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
           "INSERT INTO fenced (key, fence, value, has_value, version) "
           "SELECT 'uncommitted-' || i, 1, randomblob(4096), 1, 1 FROM n") != 0) {
    return 3;
  }
  std::cout << "paused" << std::endl;
  while (true) pause();
}

int Hammer(const std::string& url, const std::string& name) {
  auto locker = ordo::Open(url);
  if (!locker.ok()) return Fail(locker.status().ToString());
  while (true) {
    auto lease = (*locker)->Acquire({.name = name, .ttl = 300ms, .wait = 30s});
    if (!lease.ok()) return Fail(lease.status().ToString());
    std::cout << "token " << lease->token << std::endl;
    auto w = (*locker)->fenced().Write(name + ".data", std::to_string(lease->token), lease->token,
                                       name);
    if (!w.ok()) return Fail(w.status().ToString());
    (*locker)->Release(*lease).IgnoreError();
  }
}

int Group(const std::string& url, int threads) {
  auto locker = ordo::Open(url);
  if (!locker.ok()) return Fail(locker.status().ToString());
  std::mutex out;  // one line at a time on stdout
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&, name = "group-" + std::to_string(i)] {
      while (true) {
        auto lease = (*locker)->Acquire({.name = name, .ttl = 60s});
        {
          std::lock_guard<std::mutex> lock(out);
          if (!lease.ok()) {
            Fail(lease.status().ToString());
            std::_Exit(3);
          }
          std::cout << "token " << name << " " << lease->token << std::endl;
        }
        (*locker)->Release(*lease).IgnoreError();
      }
    });
  }
  for (auto& w : workers) w.join();  // never: the test kills this process
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "migrate" && argc == 3) return Migrate(argv[2]);
  if (mode == "pause-in-transaction" && argc == 3) return PauseInTransaction(argv[2]);
  if (mode == "hammer" && argc == 4) return Hammer(argv[2], argv[3]);
  if (mode == "group" && argc == 4) return Group(argv[2], std::stoi(argv[3]));
  std::fprintf(stderr, "usage: ordo-sqlite-helper migrate URL | pause-in-transaction PATH | "
                       "hammer URL NAME | group URL N\n");
  return 2;
}
