// ordo-torture: a Jepsen-style fault-injection test of ordo's locks and fenced stores.
//
// One run is an orchestrator process that starts
//   - K worker processes (this binary, `worker` mode) that loop: acquire a short lease, read a
//     counter from the backend's FencedStore, sleep a random while (so some outlive their
//     lease), write counter+1 with their token, release — logging every invocation and
//     completion to a history;
//   - one nemesis process (`nemesis` mode) that pauses workers with SIGSTOP past their TTL,
//     kills them with SIGKILL (the orchestrator starts replacements), crash-restarts the
//     PostgreSQL server (`pg_ctl stop -m immediate`, then start) and kills the `ordo serve`
//     process of http runs (the orchestrator restarts it);
//   - for postgresql:// and http:// runs, a throwaway PostgreSQL cluster and `ordo serve`;
//     'http://?replicas=N&standby=1' runs N `ordo serve` replicas over a primary with a
//     synchronous streaming standby (multi-host URL), workers spread over the replicas, and the
//     first database fault is a primary crash followed by the standby's promotion;
//     '&pgbouncer=session' puts one PgBouncer in session pooling between the replicas and the
//     primary, re-pointed at the standby when it is promoted.
// When the time is up it stops everything, reads the final counter, and hands the merged
// history to the checker (checker.h), which prints one report line.
//
// That is the `lock` workload. Two more share the processes and the checker:
//   - `semaphore`: the lock is a semaphore of --permits N; each permit holder does the same
//     read-modify-write on the counter of its own slot ("<key>.slot-<slot>"), so each slot's
//     counter is guarded by at most one live holder and fenced by its tokens;
//   - `election`: the workers are candidates (ordo/election.h) and the leader moves a state
//     object through versioned transitions, VersionedStore::CompareAndSwap with its term as the
//     token, while the nemesis pauses and kills mostly the leader.
#ifndef ORDO_TOOLS_TORTURE_TORTURE_H_
#define ORDO_TOOLS_TORTURE_TORTURE_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ordo::torture {

// How the workers use the store.
//   kFencedReads: Read(key, token) then Write(key, v+1, token) — safe.
//   kStrict:      both also pass the lock name, so only the live holder is admitted — safe.
//   kControlUnfencedWrites: the read is plain and the write carries kUnfencedToken, a token
//                 above any real one, so the store's check can never refuse it: the write path
//                 of a program that ignores fencing. The checker must find violations.
//   kControlUnfencedReads: fenced writes, plain reads: fencing writes alone does not protect
//                 a read-modify-write. The checker must find lost updates.
//   kUserTable:   the counter is a row of a separate PostgreSQL database (the user's own), and
//                 the read-modify-write is one transaction there that starts with
//                 ordo_fence(key, token) (`ordo fence`, user_table.cc) — safe.
//   kControlUserTable: the same transaction without ordo_fence. The checker must find lost
//                 updates.
// The election workload reads modes its own way: kFencedReads — the transition is the fenced
// CAS with the term as token (there is no read to fence: the version is the guard of the read);
// kStrict — also with the election's name, so only the live leader's term is admitted;
// kControlUnfencedCas — the version-only CAS, which a deposed leader that read a fresh version
// passes. The checker must find its transition.
enum class Mode {
  kFencedReads,
  kStrict,
  kControlUnfencedWrites,
  kControlUnfencedReads,
  kUserTable,
  kControlUserTable,
  kControlUnfencedCas,
};

// What the workers do (see the top of this file).
enum class Workload { kLock, kSemaphore, kElection };

std::string_view WorkloadName(Workload workload);
std::optional<Workload> ParseWorkload(std::string_view name);
// Whether `mode` makes sense for `workload`; if not, *why says so.
bool ModeFits(Workload workload, Mode mode, std::string* why);
// The counter key of a semaphore slot.
std::string SlotKey(std::string_view key, std::uint32_t slot);

std::string_view ModeName(Mode mode);
std::optional<Mode> ParseMode(std::string_view name);
inline bool IsControl(Mode mode) {
  return mode == Mode::kControlUnfencedWrites || mode == Mode::kControlUnfencedReads ||
         mode == Mode::kControlUserTable || mode == Mode::kControlUnfencedCas;
}
inline bool IsUserTable(Mode mode) {
  return mode == Mode::kUserTable || mode == Mode::kControlUserTable;
}

// Far above any token a backend issues in a run, and below 2^52 so that it survives JSON.
inline constexpr std::uint64_t kUnfencedToken = std::uint64_t{1} << 50;

struct WorkerOptions {
  std::string backend;  // the URL the worker opens
  Workload workload = Workload::kLock;
  Mode mode = Mode::kFencedReads;
  std::uint32_t permits = 1;  // semaphore: the limit
  std::string leader_file;    // election: where the leader writes its name for the nemesis
  std::string lock;
  std::string key;
  std::chrono::milliseconds ttl{300};
  std::chrono::milliseconds wait{3000};
  std::chrono::milliseconds max_sleep{400};
  std::string history;  // this process's history file
  std::string name;     // "w3.2"
  std::uint64_t seed = 0;
  std::string user_db;  // user-table modes: libpq conninfo of the user's database
};

// Loops until SIGTERM. Returns the process exit code.
int RunWorker(const WorkerOptions& options);
// The worker of the user-table modes (user_table.cc); RunWorker hands over to it after
// installing the SIGTERM handler.
int RunUserTableWorker(const WorkerOptions& options);
// In a worker: whether SIGTERM has asked it to stop.
bool StopRequested();
// Sleeps; a SIGTERM cuts it short (nanosleep returns EINTR).
void SleepFor(std::chrono::milliseconds d);

struct NemesisOptions {
  // SOCK_SEQPACKET to the orchestrator. In: "worker <name>" / "server <name>", each with a
  // pidfd; "db ok|fail" after a restart. Out: "restart-db <down_ms>".
  int control_fd = -1;
  std::string history;
  std::uint64_t seed = 0;
  std::chrono::milliseconds ttl{300};
  // Crash-restart the database: the nemesis decides when and for how long; the orchestrator,
  // which owns the PostgreSQL cluster, runs `pg_ctl stop -m immediate` and `pg_ctl start`.
  bool restart_db = false;
  bool kill_server = false;
  // With both: the database fault comes first (runs with a standby: the failover).
  bool database_first = false;
  // Election runs: the file the leader writes its name to; pauses and kills pick that worker
  // four times out of five.
  std::string leader_file;
};

// Injects faults until the control socket is closed; then resumes any paused worker and makes
// sure the database runs again. Returns the process exit code.
int RunNemesis(const NemesisOptions& options);

struct RunOptions {
  // Each backend is run in each mode, one after the other (runs on PostgreSQL share one
  // cluster). flock://, fcntl://, sqlite://[?strategy=], postgresql://[?strategy=] and http://
  // are shorthands: the run makes its own directory, database file, cluster or server.
  std::vector<std::string> backends;
  Workload workload = Workload::kLock;
  std::vector<Mode> modes;
  std::uint32_t permits = 3;  // semaphore runs
  std::chrono::milliseconds duration{5000};
  int workers = 6;
  std::chrono::milliseconds ttl{300};
  std::chrono::milliseconds wait{3000};
  std::chrono::milliseconds max_sleep{400};
  bool nemesis = true;
  std::uint64_t seed = 0;     // 0: pick one (printed to stderr)
  std::string history_dir;    // empty: a temporary directory, kept only when the run fails
  std::string self;           // path of this binary, for the child processes
  std::string ordo_binary;    // path of `ordo`, for http runs
  std::string server_strategy = "cas";  // the PostgreSQL strategy behind an http run
};

// Runs every backend in every mode, printing one report line per run. Returns 0 when every run
// passed: no violation in a safe mode, at least one in a control mode; 1 when one failed; 2
// when one could not run.
int RunTorture(const RunOptions& options);

}  // namespace ordo::torture

namespace ordo::testing {
class PgCluster;
}  // namespace ordo::testing

namespace ordo::torture {

// The user's database of run `run`, in `cluster`: created, ordo_fence installed, the counter row
// at 0. Returns its libpq conninfo. Throws on failure.
std::string PrepareUserTable(ordo::testing::PgCluster& cluster, int run);
// The counter row of the user's database; nullopt (and *error) when it cannot be read.
std::optional<std::int64_t> ReadUserCounter(const std::string& conninfo, std::string* error);

}  // namespace ordo::torture

#endif  // ORDO_TOOLS_TORTURE_TORTURE_H_
