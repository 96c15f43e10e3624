// ordo-bench's framework: run settings, load generators, latency samplers and the result table.
//
// Every row compares ordo with the raw mechanism it wraps, measured in the same process and the
// same run, so that the ratio cancels the machine out. Nothing here is thread-safe unless said:
// the bench runs one measurement at a time, and the load generators own their threads.
#ifndef ORDO_BENCH_BENCH_H_
#define ORDO_BENCH_BENCH_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ordo::bench {

// How long and how much to measure. --quick and --smoke scale everything down.
struct Config {
  bool quick = false;
  bool smoke = false;
  double seconds = 1.5;         // measured time of one closed-loop sample
  double warmup = 0.3;          // unmeasured time before it
  int wake_iterations = 200;    // release -> waiter samples
  int spawn_runs = 200;         // `ordo run -- true` vs `flock -n` runs
  int memory_leases = 100'000;  // held leases in the memory row
  int memory_waiters = 1'000;   // blocked acquires in the memory row
  int scale_rows = 1'000'000;   // lock rows in the large scale table
  std::string only;             // run only backends whose label contains this
  std::string ordo_binary;      // the `ordo` CLI; found next to ordo-bench when empty
  std::string self_dir;         // the directory of ordo-bench itself
};

// One measured figure. ops_per_sec < 0 means "not measured"; `note` then says why
// ("n/a (backend not built)") or carries the error that stopped the measurement.
struct Sample {
  double ops_per_sec = -1;
  double p50_us = -1;
  double p99_us = -1;
  std::string note;
  bool failed = false;  // an error, as opposed to a documented n/a
  // What Merge() needs: the operations counted over `elapsed` seconds (0: a rate without a
  // count, weighted as one second) and the individual latencies behind p50/p99.
  double count = 0;
  double elapsed = 0;
  std::vector<double> latencies_us;

  bool ok() const { return note.empty() && (ops_per_sec >= 0 || p50_us >= 0); }
  static Sample NotAvailable(std::string why) { return {.note = std::move(why)}; }
  static Sample Error(std::string what) { return {.note = "error: " + std::move(what), .failed = true}; }
};

// How a row's ratio is formed.
enum class RowKind {
  kThroughput,  // ratio = ordo ops/s / baseline ops/s
  kLatency,     // ratio = baseline p50 / ordo p50 (higher is still better)
  kWallTime,    // ratio = baseline mean / ordo mean (p50 columns carry the means)
  kMemory,      // ratio = baseline peak RSS / ordo peak RSS (ops/s column carries MiB)
};

struct Row {
  std::string backend;
  std::string scenario;
  int clients = 1;
  RowKind kind = RowKind::kThroughput;
  Sample ordo;
  std::string baseline_name;
  Sample baseline;
  // Shown under the table: the SQL or script the baseline ran.
  std::string detail;

  double ratio() const;  // < 0 when either side is missing
};

// The rows in order, printed as one Markdown table plus the details.
class Table {
 public:
  void Add(Row row);
  void AddNote(std::string note) { notes_.push_back(std::move(note)); }
  std::string Markdown() const;
  const std::vector<Row>& rows() const { return rows_; }

 private:
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
};

// --- load generators -------------------------------------------------------------------------

// One operation of client `client`. Returns false when the operation failed (it is not counted;
// the first error message is reported through `error`).
using Op = std::function<bool(int client, std::string* error)>;

// Runs `clients` threads in a closed loop: warm-up, then `cfg.seconds` of measured operations.
// ops/s counts successful operations; when `time_ops` is set, a sample of operations is timed
// individually for p50/p99 (baselines skip it: their own clock reads would cost more than the
// mechanism). Returns an error sample when more than half the operations failed.
Sample RunClosedLoop(const Config& cfg, int clients, const Op& op, bool time_ops = true);

// Release-to-wake latency. `hold()` takes the lock in the calling thread; `wait()` blocks in a
// waiter thread until it holds the lock; `unwait()` then frees the waiter's lock (untimed);
// `release()` frees the holder's lock. Each iteration: hold, start the waiter, give it
// `block_delay` to block, then t0 = now, release(), and t1 = when wait() returned. p50/p99 of
// t1 - t0.
struct WakeOps {
  std::function<bool(std::string* error)> hold;
  std::function<bool(std::string* error)> wait;
  std::function<bool(std::string* error)> unwait;
  std::function<bool(std::string* error)> release;
};
Sample MeasureWake(const Config& cfg, const WakeOps& ops, std::chrono::microseconds block_delay);

// Combines the rounds of one measurement: ops/s over the total time, percentiles over all the
// latencies. An error in any round is the result.
Sample Merge(const std::vector<Sample>& rounds);

// p50/p99 of a set of durations in microseconds (sorted in place).
void Percentiles(std::vector<double>& us, Sample* out);

// Seconds since some fixed point (steady clock).
double NowSeconds();

}  // namespace ordo::bench

#endif  // ORDO_BENCH_BENCH_H_
