// The torture test's checker: reads a history (history.h) — nothing else — and says whether the
// run kept ordo's invariants. The history ends with a "final" event carrying the counter value
// the store holds after every worker stopped.
//
// Operations are paired by (process, op). An operation "happened before" another when its
// completion was stamped before the other's invocation; overlapping operations may have taken
// effect in either order, so every check below only compares pairs ordered in real time. An
// invocation without completion (the worker was killed) and an "info" completion are unknown:
// they may or may not have taken effect.
//
// Checks (each failure is one violation):
//   token-zero       a grant with token 0.
//   token-duplicate  two grants of one lock with the same token.
//   token-order      a grant invoked after another grant of the lock completed, with a token
//                    not larger than that grant's: tokens must grow in the order they are
//                    issued, across kills, database and server restarts.
//   stale-write      an accepted write whose holder's token is lower than the token of an
//                    accepted write or a fenced read that completed before it was invoked: the
//                    store let a superseded holder write.
//   lost-update      two acknowledged writes that set the same counter value: two holders read
//                    the same value and both writes were accepted.
//   stale-read       a read returned a value lower than one an acknowledged write had set
//                    before the read was invoked.
//   final-count      the final counter is not within [acked, acked + unknown writes].
//   missing-write    an acknowledged write set a value above the final counter: it was lost.
//   unexplained-value  a value in 1..final that no acknowledged or unknown write set.
//   no-final         the history has no final state (of a counter key).
//   slot-range       a semaphore grant whose slot is not in 0 .. limit-1 (the acquire's
//                    invocation carries the limit, its completion the slot).
// Reads, writes and the counter checks are per key (the invocation's detail), so on a
// semaphore each slot's counter is checked on its own: at most one holder's writes are accepted
// per slot at a time, else a stale write or a lost update shows.
// Election runs (cas operations, per state object):
//   transition-fork  two accepted transitions from the same version.
//   stale-term       an accepted transition whose leader's term is below the term of a
//                    transition accepted before it was invoked: a deposed leader moved the
//                    state. (Terms grow: token-order on the campaign grants.)
//
// Thread-safe: a pure function.
#ifndef ORDO_TOOLS_TORTURE_CHECKER_H_
#define ORDO_TOOLS_TORTURE_CHECKER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "history.h"

namespace ordo::torture {

struct CheckResult {
  std::uint64_t ops = 0;            // worker invocations (acquire, read, write, release)
  std::uint64_t grants = 0;         // successful acquisitions
  std::uint64_t acked = 0;          // writes (and transitions) acknowledged
  std::uint64_t refused = 0;        // writes (and transitions) refused as stale
  std::uint64_t reads_refused = 0;  // fenced reads refused as stale
  std::uint64_t unknown = 0;        // writes whose outcome is unknown (info or no completion)
  std::uint64_t pauses = 0;         // nemesis: SIGSTOP of a worker
  std::uint64_t kills = 0;          // nemesis: SIGKILL of a worker
  std::uint64_t restarts = 0;       // nemesis: database or server restarts
  std::optional<std::int64_t> final_value;           // the sum of the finals
  std::map<std::string, std::int64_t> finals;        // key -> its final counter
  std::uint64_t violations = 0;
  std::map<std::string, std::uint64_t> by_kind;  // violation kind -> count
  std::vector<std::string> examples;              // the first few violations, described
};

CheckResult Check(const std::vector<Event>& events);

}  // namespace ordo::torture

#endif  // ORDO_TOOLS_TORTURE_CHECKER_H_
