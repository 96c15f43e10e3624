#include "checker.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <set>
#include <utility>

namespace ordo::torture {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t kMaxExamples = 20;

// One operation: an invocation and, if it came, its completion.
struct Op {
  std::string process;
  std::uint64_t op = 0;
  Fn fn = Fn::kAcquire;
  std::int64_t invoked = 0;
  std::int64_t completed = kNever;  // kNever: no completion (unknown outcome)
  std::optional<Phase> outcome;
  std::uint64_t lease = 0;          // the holder's token (acquire: the granted one)
  std::uint64_t sent = 0;           // the token sent to the store
  std::int64_t value_in = -1;       // write: the value written
  std::int64_t value_out = -1;      // read: the value read
  std::string target;               // the invocation's detail (the lock name)

  std::string Describe() const {
    std::string s = process + "#" + std::to_string(op) + " " + std::string(FnName(fn)) +
                    " [" + std::to_string(invoked) + ", " +
                    (completed == kNever ? std::string("?") : std::to_string(completed)) + "]";
    return s;
  }
};

class Checker {
 public:
  explicit Checker(CheckResult& result) : r_(result) {}

  void Violation(const std::string& kind, const std::string& what) {
    ++r_.violations;
    ++r_.by_kind[kind];
    if (r_.examples.size() < kMaxExamples) r_.examples.push_back(kind + ": " + what);
  }

  // For each op in `later` (by invocation), the largest key(x) over x in `earlier` that
  // completed before it was invoked, passed to `judge`. O((n + m) log(n + m)).
  static void SweepHappenedBefore(
      std::vector<const Op*> earlier, std::vector<const Op*> later,
      const std::function<std::int64_t(const Op&)>& key,
      const std::function<void(const Op& op, std::int64_t max_before, const Op* witness)>&
          judge) {
    std::sort(earlier.begin(), earlier.end(),
              [](const Op* a, const Op* b) { return a->completed < b->completed; });
    std::sort(later.begin(), later.end(),
              [](const Op* a, const Op* b) { return a->invoked < b->invoked; });
    std::int64_t best = std::numeric_limits<std::int64_t>::min();
    const Op* witness = nullptr;
    std::size_t j = 0;
    for (const Op* op : later) {
      while (j < earlier.size() && earlier[j]->completed < op->invoked) {
        if (key(*earlier[j]) > best) {
          best = key(*earlier[j]);
          witness = earlier[j];
        }
        ++j;
      }
      judge(*op, best, witness);
    }
  }

  void CheckGrants(const std::vector<Op>& ops) {
    std::map<std::string, std::vector<const Op*>> by_lock;
    for (const Op& op : ops) {
      if (op.fn == Fn::kAcquire && op.outcome == Phase::kOk) by_lock[op.target].push_back(&op);
    }
    for (auto& [lock, grants] : by_lock) {
      r_.grants += grants.size();
      std::map<std::uint64_t, const Op*> seen;
      for (const Op* g : grants) {
        if (g->lease == 0) Violation("token-zero", g->Describe() + " on " + lock);
        // Semaphore grants: the invocation carries the limit, the completion the slot.
        if (g->value_in > 0 && (g->value_out < 0 || g->value_out >= g->value_in)) {
          Violation("slot-range", g->Describe() + " got slot " + std::to_string(g->value_out) +
                                      " of a semaphore of " + std::to_string(g->value_in) +
                                      " on " + lock);
        }
        auto [it, fresh] = seen.emplace(g->lease, g);
        if (!fresh) {
          Violation("token-duplicate", "token " + std::to_string(g->lease) + " granted to " +
                                           it->second->Describe() + " and " + g->Describe());
        }
      }
      SweepHappenedBefore(
          grants, grants, [](const Op& g) { return static_cast<std::int64_t>(g.lease); },
          [&](const Op& g, std::int64_t max_before, const Op* witness) {
            if (witness != nullptr && static_cast<std::int64_t>(g.lease) <= max_before) {
              Violation("token-order", g.Describe() + " got token " + std::to_string(g.lease) +
                                           " after " + witness->Describe() + " got " +
                                           std::to_string(max_before) + " on " + lock);
            }
          });
    }
  }

  // The fence checks of one key's reads and writes.
  void CheckFence(const std::vector<const Op*>& ops) {
    // What raises a key's fence: accepted writes (by their holder's token, whatever token they
    // sent — a control run that bypasses the check still shows as a stale holder writing) and
    // fenced reads that were admitted.
    std::vector<const Op*> fence_raisers;
    std::vector<const Op*> accepted;
    for (const Op* op : ops) {
      if (op->outcome != Phase::kOk) continue;
      if (op->fn == Fn::kWrite) {
        accepted.push_back(op);
        fence_raisers.push_back(op);
      } else if (op->fn == Fn::kRead && op->sent > 0) {
        fence_raisers.push_back(op);
      }
    }
    SweepHappenedBefore(
        fence_raisers, accepted,
        [](const Op& op) {
          return static_cast<std::int64_t>(op.fn == Fn::kWrite ? op.lease : op.sent);
        },
        [&](const Op& w, std::int64_t max_before, const Op* witness) {
          if (witness != nullptr && static_cast<std::int64_t>(w.lease) < max_before) {
            Violation("stale-write", w.Describe() + " by holder of token " +
                                         std::to_string(w.lease) + " was accepted after " +
                                         witness->Describe() + " registered token " +
                                         std::to_string(max_before));
          }
        });
  }

  // The counter checks of one key; `final_value` is its final state (nullopt: none).
  void CheckCounter(const std::string& key, const std::vector<const Op*>& ops,
                    std::optional<std::int64_t> final_value_of_key) {
    std::map<std::int64_t, const Op*> acked_values;
    std::set<std::int64_t> unknown_values;
    std::vector<const Op*> acked;
    std::vector<const Op*> reads;
    std::uint64_t acked_here = 0;
    std::uint64_t unknown_here = 0;
    for (const Op* p : ops) {
      const Op& op = *p;
      if (op.fn == Fn::kRead && op.outcome == Phase::kOk) reads.push_back(&op);
      if (op.fn != Fn::kWrite) continue;
      if (op.outcome == Phase::kOk) {
        ++r_.acked;
        ++acked_here;
        acked.push_back(&op);
        auto [it, fresh] = acked_values.emplace(op.value_in, &op);
        if (!fresh) {
          Violation("lost-update", "value " + std::to_string(op.value_in) + " of " + key +
                                       " acknowledged to " + it->second->Describe() + " and " +
                                       op.Describe());
        }
      } else if (op.outcome == Phase::kRefused) {
        ++r_.refused;
      } else if (!op.outcome || op.outcome == Phase::kInfo) {
        ++r_.unknown;
        ++unknown_here;
        unknown_values.insert(op.value_in);
      }
    }
    SweepHappenedBefore(
        acked, reads, [](const Op& w) { return w.value_in; },
        [&](const Op& rd, std::int64_t max_before, const Op* witness) {
          if (witness != nullptr && rd.value_out < max_before) {
            Violation("stale-read", rd.Describe() + " read " + std::to_string(rd.value_out) +
                                        " after " + witness->Describe() + " had written " +
                                        std::to_string(max_before));
          }
        });
    if (!final_value_of_key) {
      Violation("no-final", "the history has no final state of " + key);
      return;
    }
    const std::int64_t final_value = *final_value_of_key;
    const auto acked_count = static_cast<std::int64_t>(acked_here);
    const auto unknown_count = static_cast<std::int64_t>(unknown_here);
    const bool in_bounds =
        final_value >= acked_count && final_value <= acked_count + unknown_count;
    if (!in_bounds) {
      Violation("final-count", "final counter " + std::to_string(final_value) + " of " + key +
                                   " with " +
                                   std::to_string(acked_count) + " acknowledged and " +
                                   std::to_string(unknown_count) + " unknown writes");
    }
    for (const auto& [value, op] : acked_values) {
      if (value > final_value) {
        Violation("missing-write", op->Describe() + " set " + std::to_string(value) +
                                       " but the final counter is " +
                                       std::to_string(final_value));
      }
    }
    // (Only when the count is plausible: a garbage counter would make this loop huge.)
    for (std::int64_t v = 1; in_bounds && v <= final_value; ++v) {
      if (!acked_values.contains(v) && !unknown_values.contains(v)) {
        Violation("unexplained-value",
                  "no write set " + std::to_string(v) + " of " + key +
                      " yet the final counter is " + std::to_string(final_value));
      }
    }
  }

  // The transitions of one state object (election runs): no two accepted from one version, and
  // none accepted from a term below that of a transition accepted before it was invoked.
  void CheckTransitions(const std::string& key, const std::vector<const Op*>& ops) {
    std::map<std::int64_t, const Op*> from_version;
    std::vector<const Op*> accepted;
    for (const Op* op : ops) {
      if (op->fn != Fn::kCas) continue;
      if (op->outcome == Phase::kOk) {
        ++r_.acked;
        accepted.push_back(op);
        auto [it, fresh] = from_version.emplace(op->value_in, op);
        if (!fresh) {
          Violation("transition-fork", "two transitions of " + key + " from version " +
                                           std::to_string(op->value_in) + " accepted: " +
                                           it->second->Describe() + " (term " +
                                           std::to_string(it->second->lease) + ") and " +
                                           op->Describe() + " (term " +
                                           std::to_string(op->lease) + ")");
        }
      } else if (op->outcome == Phase::kRefused) {
        ++r_.refused;
      } else if (!op->outcome || op->outcome == Phase::kInfo) {
        ++r_.unknown;
      }
    }
    SweepHappenedBefore(
        accepted, accepted, [](const Op& op) { return static_cast<std::int64_t>(op.lease); },
        [&](const Op& t, std::int64_t max_before, const Op* witness) {
          if (witness != nullptr && static_cast<std::int64_t>(t.lease) < max_before) {
            Violation("stale-term", t.Describe() + " of " + key + " by the leader of term " +
                                        std::to_string(t.lease) + " was accepted after " +
                                        witness->Describe() + " of term " +
                                        std::to_string(max_before));
          }
        });
  }

 private:
  CheckResult& r_;
};

bool IsWorkerFn(Fn fn) {
  return fn == Fn::kAcquire || fn == Fn::kRead || fn == Fn::kWrite || fn == Fn::kRelease ||
         fn == Fn::kCas;
}

}  // namespace

CheckResult Check(const std::vector<Event>& events) {
  CheckResult result;
  std::vector<Op> ops;
  std::map<std::pair<std::string, std::uint64_t>, std::size_t> index;
  for (const Event& e : events) {
    if (e.fn == Fn::kFinal) {
      if (e.phase == Phase::kOk) {
        result.finals[e.detail] = e.value;
        result.final_value = result.final_value.value_or(0) + e.value;
      }
      continue;
    }
    if (e.phase != Phase::kInvoke) {
      if (e.phase == Phase::kOk && e.fn == Fn::kPause) ++result.pauses;
      if (e.phase == Phase::kOk && e.fn == Fn::kKill) ++result.kills;
      if (e.phase == Phase::kOk && e.fn == Fn::kRestart) ++result.restarts;
    }
    if (!IsWorkerFn(e.fn)) continue;
    const auto key = std::make_pair(e.process, e.op);
    if (e.phase == Phase::kInvoke) {
      ++result.ops;
      index[key] = ops.size();
      ops.push_back({.process = e.process, .op = e.op, .fn = e.fn, .invoked = e.t_ns,
                     .lease = e.lease, .sent = e.sent, .value_in = e.value,
                     .target = e.detail});
      continue;
    }
    const auto it = index.find(key);
    if (it == index.end()) continue;  // a completion without invocation: nothing to pair
    Op& op = ops[it->second];
    op.completed = e.t_ns;
    op.outcome = e.phase;
    op.value_out = e.value;
    if (op.fn == Fn::kAcquire) op.lease = e.lease;
  }
  for (Op& op : ops) {
    if (op.fn == Fn::kRead && op.outcome == Phase::kRefused) ++result.reads_refused;
  }
  Checker checker(result);
  checker.CheckGrants(ops);
  // Reads, writes and transitions by the key they name (their invocation's detail); counter
  // keys are those with writes or a final state.
  std::map<std::string, std::vector<const Op*>> by_key;
  std::set<std::string> counters;
  std::set<std::string> state_objects;
  for (const Op& op : ops) {
    if (op.fn == Fn::kRead || op.fn == Fn::kWrite || op.fn == Fn::kCas) {
      by_key[op.target].push_back(&op);
    }
    if (op.fn == Fn::kWrite) counters.insert(op.target);
    if (op.fn == Fn::kCas) state_objects.insert(op.target);
  }
  for (const auto& [key, value] : result.finals) {
    if (!state_objects.contains(key)) counters.insert(key);
  }
  if (counters.empty() && state_objects.empty()) {
    checker.Violation("no-final", "the history has no final state");
  }
  for (const std::string& key : counters) {
    const auto final_of_key = result.finals.find(key);
    checker.CheckFence(by_key[key]);
    checker.CheckCounter(key, by_key[key],
                         final_of_key == result.finals.end()
                             ? std::nullopt
                             : std::optional<std::int64_t>(final_of_key->second));
  }
  for (const std::string& key : state_objects) checker.CheckTransitions(key, by_key[key]);
  return result;
}

}  // namespace ordo::torture
