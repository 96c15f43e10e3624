// The per-backend part of ordo-bench: what the raw mechanism of each backend is, and the generic
// driver that measures ordo's Locker against it scenario by scenario.
#ifndef ORDO_BENCH_BACKENDS_H_
#define ORDO_BENCH_BACKENDS_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bench.h"
#include "procs.h"

namespace ordo {
class Locker;
}  // namespace ordo

namespace ordo::bench {

enum class Scenario {
  kPair,       // uncontended acquire+release pairs (each client its own name)
  kContended,  // every client on one name, acquires that wait
  kWake,       // release -> blocked waiter holds the lock
  kFenced,     // FencedStore::Write with a held token
  kCas,        // VersionedStore::CompareAndSwap from the version just written
};

struct Baseline {
  std::string name;    // the table's "baseline" column
  Sample sample;
  std::string detail;  // SQL / script printed under the table, or empty
};

// One backend (one URL) and its raw mechanism. Setup() starts what the backend needs (servers,
// directories); the destructor stops it, also after an error.
class BackendBench {
 public:
  virtual ~BackendBench() = default;

  virtual std::string label() const = 0;   // "flock://", "postgresql:// cas"
  virtual std::string scheme() const = 0;  // the registry scheme ordo::Open needs
  // Why the backend's rows cannot run in this build ("n/a (backend not built)"), or "".
  virtual std::string NotAvailable(const Config& cfg) const;
  // Starts servers and fills url(). An error here turns every row of the backend into an error.
  virtual std::string Setup(const Config& cfg) = 0;  // "" on success, else why not
  virtual std::string url() const = 0;
  // The raw mechanism for a scenario, same client count.
  virtual Baseline Measure(const Config& cfg, Scenario scenario, int clients) = 0;
  // How long a waiter needs to get blocked (local: a syscall; servers: a round trip).
  virtual std::chrono::microseconds block_delay() const { return std::chrono::microseconds(1000); }
  // The scenarios this backend runs (all by default).
  virtual std::vector<Scenario> scenarios() const {
    return {Scenario::kPair, Scenario::kContended, Scenario::kWake, Scenario::kFenced,
            Scenario::kCas};
  }
  // Called with the ordo result before the baseline of the same scenario is measured (pgbench
  // sizes a --quick run from it).
  virtual void SawOrdo(Scenario, int, const Sample&) {}
};

// Measures every scenario of `backend` (ordo then baseline, same run) and adds the rows.
// When its scheme is not registered in libordo, adds "n/a (backend not built)" rows.
void RunBackend(const Config& cfg, BackendBench& backend, Table& table);

// ordo's side of a scenario on any URL.
Sample MeasureOrdo(const Config& cfg, const std::string& url, Scenario scenario, int clients,
                   std::chrono::microseconds block_delay);

// Uncontended acquire+release pairs, client c on lockers[c], each client its own name (the
// kPair scenario on lockers the caller opened, e.g. spread over several servers).
Sample MeasurePairs(const Config& cfg, std::vector<std::unique_ptr<Locker>>& lockers,
                    const std::string& tag);

bool SchemeRegistered(const std::string& scheme);

// The backends of each area (each defined in its rows_*.cc).
std::vector<std::unique_ptr<BackendBench>> LocalBackends();
std::vector<std::unique_ptr<BackendBench>> SqliteBackends();
std::vector<std::unique_ptr<BackendBench>> PostgresBackends();
std::vector<std::unique_ptr<BackendBench>> HttpBackends();
std::vector<std::unique_ptr<BackendBench>> EtcdBackends();

// Rows that are not a Locker scenario: `ordo run`, memory, scale.
void RunCliRows(const Config& cfg, Table& table);
// Limit-4 semaphore rows, 8 clients (rows_semaphore.cc).
void RunSemaphoreRows(const Config& cfg, Table& table);
// Election hand-over and Observe latency beside each backend's wake-up row (rows_election.cc).
void RunElectionRows(const Config& cfg, Table& table);
// The same on PostgreSQL (every strategy) and etcd, against their plain locks
// (rows_semaphore_db.cc).
void RunSemaphoreDbRows(const Config& cfg, Table& table);
void RunMemoryRow(const Config& cfg, Table& table);
// ordo serve's acquire+release with the events ring on vs --events-ring 0 (rows_http.cc).
void RunRingRows(const Config& cfg, Table& table);
void RunParkedRow(const Config& cfg, Table& table);  // rows_parked.cc
void RunScaleRow(const Config& cfg, Table& table);
// `ordo run --backend etcd://… -- true` against `etcdctl lock NAME true` (rows_etcd.cc).
void RunEtcdCliRow(const Config& cfg, Table& table);
// pgbench -M prepared with `script` in the database `conninfo` names, at `clients` clients, for
// `secs` seconds (or -t `transactions` when secs is 0): its tps (rows_postgresql.cc; defined
// only where the PostgreSQL rows are built).
Sample RunPgbenchIn(const std::string& conninfo, const std::string& script, int clients,
                    int secs, long transactions, std::string* printed);
// ordo_fence in the user's own PostgreSQL transaction vs the same transaction (rows_fence.cc).
void RunFenceRows(const Config& cfg, Table& table);
// Two `ordo serve` replicas vs one on postgresql:// cas, and the failover window over a
// primary crash and a synchronous standby's promotion (rows_replicas.cc).
void RunReplicaRows(const Config& cfg, Table& table);

// `ordo serve --backend URL` on a free loopback port (stderr to a log file), or an error.
class OrdoServe {
 public:
  // `extra_args`: more `ordo serve` flags (e.g. {"--events-ring", "0"}).
  OrdoServe(const Config& cfg, const std::string& backend_url,
            const std::vector<std::string>& extra_args = {});
  const std::string& error() const { return error_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  pid_t pid() const;

 private:
  int port_ = 0;
  std::unique_ptr<class Server> server_;
  std::string error_;
};

std::string ScenarioName(Scenario scenario, int clients);

// A unique lock/key name for this run: "bench-<pid>-<tag>".
std::string BenchName(const std::string& tag);

}  // namespace ordo::bench

#endif  // ORDO_BENCH_BACKENDS_H_
