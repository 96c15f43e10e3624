// The torture checker on hand-written histories: each violation kind is caught, and legal
// concurrency (overlapping operations, unknown outcomes) is not mistaken for one.
#include "checker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "history.h"
#include "test_support.h"

namespace ordo::torture {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

class HistoryBuilder {
 public:
  // An operation of `process` invoked at t0 and completed at t1 (t1 < 0: never completed).
  HistoryBuilder& Op(const std::string& process, Fn fn, std::int64_t t0, std::int64_t t1,
                     Phase phase, std::uint64_t lease, std::uint64_t sent = 0,
                     std::int64_t value = -1, const std::string& detail = "") {
    const std::uint64_t op = ++ops_[process];
    // The invocation carries what the caller knows: for a write, its value; for a transition,
    // the version it expects; for an acquire, no token yet. Its detail names the lock ("L") or
    // the key ("counter" unless given).
    events_.push_back({.t_ns = t0, .process = process, .op = op, .fn = fn,
                       .phase = Phase::kInvoke, .lease = fn == Fn::kAcquire ? 0 : lease,
                       .sent = sent, .value = fn == Fn::kWrite || fn == Fn::kCas ? value : -1,
                       .detail = fn == Fn::kAcquire ? "L" : detail.empty() ? "counter" : detail});
    if (t1 >= 0) {
      events_.push_back({.t_ns = t1, .process = process, .op = op, .fn = fn, .phase = phase,
                         .lease = lease, .sent = sent, .value = value, .detail = detail});
    }
    return *this;
  }
  HistoryBuilder& Grant(const std::string& p, std::int64_t t0, std::int64_t t1,
                        std::uint64_t token) {
    return Op(p, Fn::kAcquire, t0, t1, Phase::kOk, token);
  }
  HistoryBuilder& Read(const std::string& p, std::int64_t t0, std::int64_t t1,
                       std::uint64_t lease, std::uint64_t sent, std::int64_t value) {
    return Op(p, Fn::kRead, t0, t1, Phase::kOk, lease, sent, value);
  }
  HistoryBuilder& Write(const std::string& p, std::int64_t t0, std::int64_t t1, Phase phase,
                        std::uint64_t lease, std::int64_t value) {
    return Op(p, Fn::kWrite, t0, t1, phase, lease, lease, value);
  }
  // One fenced read-modify-write cycle from a value to value+1, done at [t, t+9].
  HistoryBuilder& Cycle(const std::string& p, std::int64_t t, std::uint64_t token,
                        std::int64_t value) {
    Grant(p, t, t + 1, token);
    Read(p, t + 2, t + 3, token, token, value);
    Write(p, t + 4, t + 5, Phase::kOk, token, value + 1);
    return Op(p, Fn::kRelease, t + 6, t + 7, Phase::kOk, token);
  }
  HistoryBuilder& Final(std::int64_t value, const std::string& key = "counter") {
    events_.push_back({.t_ns = 1'000'000, .process = "main", .op = ++ops_["main"],
                       .fn = Fn::kFinal, .phase = Phase::kOk, .value = value, .detail = key});
    return *this;
  }
  // A semaphore grant: the invocation carries the limit, the completion the slot.
  HistoryBuilder& Permit(const std::string& p, std::int64_t t0, std::int64_t t1,
                         std::uint64_t token, std::int64_t limit, std::int64_t slot) {
    const std::uint64_t op = ++ops_[p];
    events_.push_back({.t_ns = t0, .process = p, .op = op, .fn = Fn::kAcquire,
                       .phase = Phase::kInvoke, .value = limit, .detail = "L"});
    events_.push_back({.t_ns = t1, .process = p, .op = op, .fn = Fn::kAcquire,
                       .phase = Phase::kOk, .lease = token, .value = slot});
    return *this;
  }
  // One fenced read-modify-write of a slot's counter, done at [t, t+5] by the holder of token.
  HistoryBuilder& SlotCycle(const std::string& p, std::int64_t t, std::uint64_t token,
                            const std::string& key, std::int64_t value) {
    Op(p, Fn::kRead, t, t + 1, Phase::kOk, token, token, value, key);
    return Op(p, Fn::kWrite, t + 2, t + 3, Phase::kOk, token, token, value + 1, key);
  }
  // A leader's transition of "state" from `version`, with its term.
  HistoryBuilder& Transition(const std::string& p, std::int64_t t0, std::int64_t t1,
                             Phase phase, std::uint64_t term, std::int64_t version) {
    return Op(p, Fn::kCas, t0, t1, phase, term, term, version, "state");
  }
  HistoryBuilder& Nemesis(Fn fn, std::int64_t t) {
    events_.push_back({.t_ns = t, .process = "nemesis", .op = ++ops_["nemesis"], .fn = fn,
                       .phase = Phase::kOk, .detail = "w0.1"});
    return *this;
  }
  CheckResult Check() {
    std::stable_sort(events_.begin(), events_.end(),
                     [](const Event& a, const Event& b) { return a.t_ns < b.t_ns; });
    return torture::Check(events_);
  }

 private:
  std::vector<Event> events_;
  std::map<std::string, std::uint64_t> ops_;
};

TEST(TortureChecker, SequentialCyclesPass) {
  auto r = HistoryBuilder().Cycle("w0.1", 0, 1, 0).Cycle("w1.1", 10, 2, 1).Cycle("w0.1", 20, 3, 2)
               .Final(3).Check();
  EXPECT_EQ(r.violations, 0u) << ::testing::PrintToString(r.examples);
  EXPECT_EQ(r.acked, 3u);
  EXPECT_EQ(r.grants, 3u);
  EXPECT_EQ(r.ops, 12u);
  EXPECT_EQ(r.final_value, 3);
}

TEST(TortureChecker, TokenIssuedLowerAfterAHigherOneCompletedIsFlagged) {
  auto r = HistoryBuilder().Grant("w0.1", 0, 1, 5).Grant("w1.1", 2, 3, 4).Final(0).Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("token-order", 1)));
}

TEST(TortureChecker, OverlappingGrantsMayBeIssuedInEitherOrder) {
  // B's acquire overlaps A's: the backend may have issued B's token first.
  auto r = HistoryBuilder().Grant("w0.1", 0, 10, 5).Grant("w1.1", 2, 3, 4).Final(0).Check();
  EXPECT_EQ(r.violations, 0u) << ::testing::PrintToString(r.examples);
}

TEST(TortureChecker, DuplicateAndZeroTokensAreFlagged) {
  auto r = HistoryBuilder().Grant("w0.1", 0, 10, 7).Grant("w1.1", 2, 3, 7).Grant("w2.1", 4, 5, 0)
               .Final(0).Check();
  EXPECT_EQ(r.by_kind["token-duplicate"], 1u);
  EXPECT_EQ(r.by_kind["token-zero"], 1u);
}

TEST(TortureChecker, WriteBySupersededHolderAfterFencedReadIsFlagged) {
  // A (token 1) is paused; B (token 2) reads with its token, then A's write is accepted.
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Read("w0.1", 2, 3, 1, 1, 0)
               .Grant("w1.1", 20, 21, 2)
               .Read("w1.1", 22, 23, 2, 2, 0)
               .Write("w0.1", 30, 31, Phase::kOk, 1, 1)
               .Final(1)
               .Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("stale-write", 1)));
}

TEST(TortureChecker, UnfencedReadDoesNotRaiseTheFence) {
  // Same as above but B's read carried no token: A's write is legal for the store (the lost
  // update it may cause is caught by the counter checks instead).
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Read("w0.1", 2, 3, 1, 0, 0)
               .Grant("w1.1", 20, 21, 2)
               .Read("w1.1", 22, 23, 2, 0, 0)
               .Write("w0.1", 30, 31, Phase::kOk, 1, 1)
               .Final(1)
               .Check();
  EXPECT_EQ(r.violations, 0u) << ::testing::PrintToString(r.examples);
}

TEST(TortureChecker, StaleWriteIsJudgedByTheHoldersTokenNotTheTokenSent) {
  // control-unfenced-writes sends a huge token; the checker still sees holder 1 writing after
  // holder 2 wrote.
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Grant("w1.1", 2, 3, 2)
               .Op("w1.1", Fn::kWrite, 4, 5, Phase::kOk, 2, 1ull << 50, 1)
               .Op("w0.1", Fn::kWrite, 6, 7, Phase::kOk, 1, 1ull << 50, 2)
               .Final(2)
               .Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("stale-write", 1)));
}

TEST(TortureChecker, ConcurrentWritesMayBeAcceptedInEitherOrder) {
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Grant("w1.1", 2, 3, 2)
               .Write("w1.1", 4, 10, Phase::kOk, 2, 1)
               .Write("w0.1", 5, 11, Phase::kOk, 1, 2)
               .Final(2)
               .Check();
  EXPECT_EQ(r.by_kind.count("stale-write"), 0u);
}

TEST(TortureChecker, TwoAcknowledgedWritesOfTheSameValueAreALostUpdate) {
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Read("w0.1", 2, 3, 1, 0, 0)
               .Grant("w1.1", 10, 11, 2)
               .Read("w1.1", 12, 13, 2, 0, 0)
               .Write("w0.1", 14, 15, Phase::kOk, 1, 1)
               .Write("w1.1", 16, 17, Phase::kOk, 2, 1)
               .Final(1)
               .Check();
  EXPECT_EQ(r.by_kind["lost-update"], 1u);
  EXPECT_EQ(r.by_kind["final-count"], 1u);  // two acknowledged, the counter says one
}

TEST(TortureChecker, UnknownWritesWidenTheFinalBound) {
  HistoryBuilder h;
  h.Cycle("w0.1", 0, 1, 0)
      .Grant("w1.1", 10, 11, 2)
      .Read("w1.1", 12, 13, 2, 2, 1)
      .Op("w1.1", Fn::kWrite, 14, 15, Phase::kInfo, 2, 2, 2)  // e.g. unavailable
      .Grant("w2.1", 20, 21, 3)
      .Read("w2.1", 22, 23, 3, 3, 2)
      .Write("w2.1", 24, -1, Phase::kOk, 3, 3);  // killed: no completion
  HistoryBuilder applied = h;
  HistoryBuilder lost = h;
  auto both = applied.Final(3).Check();
  EXPECT_EQ(both.violations, 0u) << ::testing::PrintToString(both.examples);
  EXPECT_EQ(both.unknown, 2u);
  EXPECT_EQ(both.acked, 1u);
  auto too_low = lost.Final(0).Check();
  EXPECT_EQ(too_low.by_kind["final-count"], 1u);
  EXPECT_EQ(too_low.by_kind["missing-write"], 1u);
  auto too_high = h.Final(4).Check();
  EXPECT_EQ(too_high.by_kind["final-count"], 1u);
}

TEST(TortureChecker, ValueNoWriteSetIsFlagged) {
  // Two acknowledged writes, 1 and 3, final 2: 3 is missing and nobody wrote 2.
  auto r = HistoryBuilder().Cycle("w0.1", 0, 1, 0).Cycle("w0.1", 10, 2, 2).Final(2).Check();
  EXPECT_EQ(r.by_kind["missing-write"], 1u);
  EXPECT_EQ(r.by_kind["unexplained-value"], 1u);
}

TEST(TortureChecker, ReadOlderThanACompletedWriteIsFlagged) {
  auto r = HistoryBuilder().Cycle("w0.1", 0, 1, 0).Read("w1.1", 20, 21, 0, 0, 0).Final(1)
               .Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("stale-read", 1)));
}

TEST(TortureChecker, RefusedWritesAreCountedNotAcknowledged) {
  auto r = HistoryBuilder()
               .Cycle("w0.1", 0, 2, 0)
               .Grant("w1.1", 0, 11, 1)  // overlaps the other grant: may be issued first
               .Write("w1.1", 12, 13, Phase::kRefused, 1, 1)
               .Final(1)
               .Check();
  EXPECT_EQ(r.refused, 1u);
  EXPECT_EQ(r.acked, 1u);
  EXPECT_EQ(r.by_kind.count("stale-write"), 0u);
}

TEST(TortureChecker, MissingFinalStateIsAViolation) {
  auto r = HistoryBuilder().Cycle("w0.1", 0, 1, 0).Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("no-final", 1)));
}

TEST(TortureChecker, CountsNemesisFaults) {
  auto r = HistoryBuilder()
               .Nemesis(Fn::kPause, 1)
               .Nemesis(Fn::kResume, 2)
               .Nemesis(Fn::kKill, 3)
               .Nemesis(Fn::kRestart, 4)
               .Nemesis(Fn::kRestart, 5)
               .Final(0)
               .Check();
  EXPECT_EQ(r.pauses, 1u);
  EXPECT_EQ(r.kills, 1u);
  EXPECT_EQ(r.restarts, 2u);
  EXPECT_EQ(r.violations, 0u);
}

TEST(TortureChecker, SemaphoreSlotsAreCheckedOneByOne) {
  // Two permits of one semaphore, each holder on its own slot's counter: both write value 1,
  // which is no lost update because the counters differ.
  auto r = HistoryBuilder()
               .Permit("w0.1", 0, 1, 1, 2, 0)
               .Permit("w1.1", 2, 3, 2, 2, 1)
               .SlotCycle("w0.1", 10, 1, "c.slot-0", 0)
               .SlotCycle("w1.1", 10, 2, "c.slot-1", 0)
               .Final(1, "c.slot-0")
               .Final(1, "c.slot-1")
               .Check();
  EXPECT_EQ(r.violations, 0u) << ::testing::PrintToString(r.examples);
  EXPECT_EQ(r.acked, 2u);
  EXPECT_EQ(r.final_value, 2);
}

TEST(TortureChecker, SemaphoreSlotWithTwoHoldersLosesAnUpdate) {
  // Holder 1 of slot 0 is paused past its TTL; holder 3 gets slot 0 and both read 0: two
  // holders' writes accepted on one slot's counter.
  auto r = HistoryBuilder()
               .Permit("w0.1", 0, 1, 1, 2, 0)
               .Op("w0.1", Fn::kRead, 2, 3, Phase::kOk, 1, 0, 0, "c.slot-0")
               .Permit("w1.1", 10, 11, 3, 2, 0)
               .Op("w1.1", Fn::kRead, 12, 13, Phase::kOk, 3, 0, 0, "c.slot-0")
               .Op("w1.1", Fn::kWrite, 14, 15, Phase::kOk, 3, 3, 1, "c.slot-0")
               .Op("w0.1", Fn::kWrite, 16, 17, Phase::kOk, 1, 1ull << 50, 1, "c.slot-0")
               .Final(1, "c.slot-0")
               .Final(0, "c.slot-1")
               .Check();
  EXPECT_EQ(r.by_kind["lost-update"], 1u);
  EXPECT_EQ(r.by_kind["stale-write"], 1u);
  EXPECT_EQ(r.by_kind["final-count"], 1u);
}

TEST(TortureChecker, SemaphoreSlotOutsideTheLimitIsFlagged) {
  auto r = HistoryBuilder().Permit("w0.1", 0, 1, 1, 2, 2).Final(0).Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("slot-range", 1)));
}

TEST(TortureChecker, ElectionWithGrowingTermsPasses) {
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Transition("w0.1", 2, 3, Phase::kOk, 1, 0)
               .Transition("w0.1", 4, 5, Phase::kOk, 1, 1)
               .Grant("w1.1", 3, 10, 2)
               .Transition("w0.1", 11, 12, Phase::kRefused, 1, 2)  // deposed: refused
               .Transition("w1.1", 13, 14, Phase::kOk, 2, 2)
               .Check();
  EXPECT_EQ(r.violations, 0u) << ::testing::PrintToString(r.examples);
  EXPECT_EQ(r.acked, 3u);
  EXPECT_EQ(r.refused, 1u);
}

TEST(TortureChecker, TwoTransitionsFromOneVersionAreAFork) {
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Grant("w1.1", 2, 3, 2)
               .Transition("w1.1", 4, 5, Phase::kOk, 2, 7)
               .Transition("w0.1", 4, 6, Phase::kOk, 1, 7)  // overlapping: no stale-term
               .Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("transition-fork", 1)));
}

TEST(TortureChecker, DeposedLeadersAcceptedTransitionIsAStaleTerm) {
  // The leader of term 1 is paused; term 2 moves the state to version 5; term 1 wakes up,
  // reads the fresh version 5 and its version-only CAS is accepted.
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 1)
               .Grant("w1.1", 2, 10, 2)
               .Transition("w1.1", 11, 12, Phase::kOk, 2, 4)
               .Transition("w0.1", 20, 21, Phase::kOk, 1, 5)
               .Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("stale-term", 1)));
}

TEST(TortureChecker, TermThatDoesNotGrowIsFlagged) {
  // Campaigns are acquires of the election's lock: a later leader with a lower term.
  auto r = HistoryBuilder()
               .Grant("w0.1", 0, 1, 4)
               .Transition("w0.1", 2, 3, Phase::kOk, 4, 0)
               .Grant("w1.1", 10, 11, 3)
               .Check();
  EXPECT_THAT(r.by_kind, ElementsAre(Pair("token-order", 1)));
}

TEST(TortureHistory, FormatAndParseRoundTrip) {
  Event e{.t_ns = 123456789, .process = "w3.2", .op = 17, .fn = Fn::kWrite,
          .phase = Phase::kRefused, .lease = 42, .sent = 42, .value = 9,
          .detail = "stale_token\twith a tab"};
  const std::string line = FormatEvent(e);
  ASSERT_EQ(line.back(), '\n');
  auto back = ParseEvent(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->t_ns, e.t_ns);
  EXPECT_EQ(back->process, "w3.2");
  EXPECT_EQ(back->op, 17u);
  EXPECT_EQ(back->fn, Fn::kWrite);
  EXPECT_EQ(back->phase, Phase::kRefused);
  EXPECT_EQ(back->lease, 42u);
  EXPECT_EQ(back->value, 9);
  EXPECT_EQ(back->detail, "stale_token with a tab");
  EXPECT_FALSE(ParseEvent("1\tw0.1\t1\twrite\tmaybe\t0\t0\t0\t").has_value());
  EXPECT_FALSE(ParseEvent("1\tw0.1\t1\twrite\tok\t0\t0").has_value());
  EXPECT_FALSE(ParseEvent("x\tw0.1\t1\twrite\tok\t0\t0\t0\t").has_value());
}

TEST(TortureHistory, WritersMergeByTimeAndATruncatedLastLineIsSkipped) {
  ordo::testing::TempDir dir;
  const std::string a = dir.path() + "/a.tsv";
  const std::string b = dir.path() + "/b.tsv";
  {
    HistoryWriter wa(a, "w0.1");
    HistoryWriter wb(b, "w1.1");
    const auto op = wa.Invoke(Fn::kAcquire, 0, 0, -1, "L");
    wb.Note(Fn::kKill, Phase::kOk, -1, "w0.1");
    wa.Complete(op, Fn::kAcquire, Phase::kOk, 1, 0, -1, "");
  }
  std::ofstream(b, std::ios::app) << "123\tw1.1\t9\twri";  // cut short by SIGKILL
  auto h = LoadHistory({a, b});
  EXPECT_EQ(h.malformed, 1u);
  ASSERT_EQ(h.events.size(), 4u);
  EXPECT_EQ(h.events[0].process, "w0.1");
  EXPECT_EQ(h.events[1].fn, Fn::kKill);
  EXPECT_EQ(h.events[3].phase, Phase::kOk);
  for (std::size_t i = 1; i < h.events.size(); ++i) {
    EXPECT_LE(h.events[i - 1].t_ns, h.events[i].t_ns);
  }
}

}  // namespace
}  // namespace ordo::torture
