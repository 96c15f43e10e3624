// The torture test's history: one line per event, written by every process of a run (workers,
// nemesis, orchestrator) and read back by the checker.
//
// Each line is tab-separated:
//
//   t_ns  process  op  fn  phase  lease  sent  value  detail
//
//   t_ns     CLOCK_MONOTONIC in nanoseconds. The clock is system-wide, so the times of distinct
//            processes on one machine are comparable. An invocation is stamped *before* the
//            call and a completion *after* it returns, so the interval [invoke, complete]
//            contains the moment the operation took effect.
//   process  who did it: "w3.2" (worker slot 3, second incarnation), "nemesis", "main".
//   op       per-process operation number; an invocation and its completion share it.
//   fn       acquire | read | write | release | final | pause | resume | kill | restart | spawn
//            | cas
//            (election runs: acquire is a campaign, its token the term; read is a Get, its
//            value the version; cas a transition, its invoke value the version it expects and
//            its ok value the new version; release a resignation)
//   phase    invoke | ok | fail | refused | info
//            ok: it happened. fail: it definitely did not (an error that changes nothing).
//            refused: a fenced operation refused as stale (kStaleToken). info: unknown — the
//            call timed out or the backend was unavailable; it may or may not have happened.
//            An invocation with no completion (the process was killed) is also unknown.
//   lease    the token of the lease the worker holds (acquire ok: the granted token), or 0
//   sent     the token passed to the store (0: an unfenced read or none)
//   value    the counter value read (read ok) or to be written (write invoke); -1 if none.
//            Semaphore runs: the limit (acquire invoke) and the slot granted (acquire ok).
//   detail   free text without tabs: a lock name, a status code, a target process
//
// Every process appends to its own file with one write(2) per line, so a process killed with
// SIGKILL can at worst leave its own last line truncated; LoadHistory skips such lines and
// counts them.
//
// Not thread-safe: one HistoryWriter per process, used by one thread.
#ifndef ORDO_TOOLS_TORTURE_HISTORY_H_
#define ORDO_TOOLS_TORTURE_HISTORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ordo::torture {

enum class Fn {
  kAcquire, kRead, kWrite, kRelease, kFinal, kPause, kResume, kKill, kRestart, kSpawn, kCas
};
enum class Phase { kInvoke, kOk, kFail, kRefused, kInfo };

std::string_view FnName(Fn fn);
std::string_view PhaseName(Phase phase);

struct Event {
  std::int64_t t_ns = 0;
  std::string process;
  std::uint64_t op = 0;
  Fn fn = Fn::kAcquire;
  Phase phase = Phase::kInvoke;
  std::uint64_t lease = 0;
  std::uint64_t sent = 0;
  std::int64_t value = -1;
  std::string detail;
};

// CLOCK_MONOTONIC now, in nanoseconds.
std::int64_t MonotonicNs();

// One line, with the trailing '\n'. Tabs and newlines in process/detail become spaces.
std::string FormatEvent(const Event& event);
// nullopt for a malformed line (wrong field count, a number that does not parse, an unknown
// fn or phase).
std::optional<Event> ParseEvent(std::string_view line);

class HistoryWriter {
 public:
  // Opens (creating, appending) `path`; aborts the process when it cannot: a torture run
  // without its history proves nothing.
  HistoryWriter(const std::string& path, std::string process);
  ~HistoryWriter();
  HistoryWriter(const HistoryWriter&) = delete;
  HistoryWriter& operator=(const HistoryWriter&) = delete;

  // Stamps the event with now, this process's name and (for an invocation) a fresh op number;
  // returns the op number. Completions pass the op number of their invocation.
  std::uint64_t Invoke(Fn fn, std::uint64_t lease, std::uint64_t sent, std::int64_t value,
                       std::string_view detail);
  void Complete(std::uint64_t op, Fn fn, Phase phase, std::uint64_t lease, std::uint64_t sent,
                std::int64_t value, std::string_view detail);
  // A one-off event (nemesis faults, spawns, the final state): an invocation and its
  // completion at the same instant.
  void Note(Fn fn, Phase phase, std::int64_t value, std::string_view detail);

 private:
  void Append(const Event& event);

  int fd_ = -1;
  std::string process_;
  std::uint64_t next_op_ = 1;
};

struct LoadedHistory {
  std::vector<Event> events;  // sorted by t_ns (stable)
  std::size_t malformed = 0;  // lines skipped
};

// Reads every file in `paths` and merges them by time.
LoadedHistory LoadHistory(const std::vector<std::string>& paths);

}  // namespace ordo::torture

#endif  // ORDO_TOOLS_TORTURE_HISTORY_H_
