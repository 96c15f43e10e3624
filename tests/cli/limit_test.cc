// `ordo run --limit N` and `ordo lock acquire --limit N`: semaphores from the command line, on
// a real SQLite file and a real flock:// directory, with the real binary.
#include <csignal>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ordo_process.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

// Prints its slot, says "ready", and runs until a line arrives on stdin.
const std::vector<std::string> kSlotThenHold = {
    "sh", "-c", "echo slot=$ORDO_LOCK_SLOT; echo ready; read code; exit $code"};

class LimitTest : public ::testing::Test {
 protected:
  virtual std::string Backend() const { return "sqlite://" + dir_.path() + "/locks.db"; }
  std::vector<std::string> Run(const std::vector<std::string>& tail, const std::string& limit) {
    return Cat({"run", "--backend", Backend(), "--lock", "sem", "--limit", limit, "--"}, tail);
  }
  // A background `ordo run --limit 2` that holds `slot` until a line arrives on its stdin.
  std::unique_ptr<Child> Holding(int slot) {
    auto run = StartOrdo(Run(kSlotThenHold, "2"));
    EXPECT_EQ(run->ReadLine(), "slot=" + std::to_string(slot));
    EXPECT_EQ(run->ReadLine(), "ready");
    return run;
  }
  // The slot a further `ordo run --limit 2` gets.
  void NextRunGetsSlot(int slot) {
    auto r = RunOrdo(Run({"sh", "-c", "echo $ORDO_LOCK_SLOT"}, "2"));
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out, std::to_string(slot) + "\n");
  }
  void RunHoldsOneOfNPermits();
  TempDir dir_;
};

// flock://, the default backend of `ordo run`: a permit lives as long as the ordo process, so a
// crontab line `ordo run --limit 2 …` needs no server, and a killed run frees its slot at once.
class FlockLimitTest : public LimitTest {
 protected:
  std::string Backend() const override { return "flock://" + dir_.path(); }
};

void LimitTest::RunHoldsOneOfNPermits() {
  auto first = Holding(0);
  auto second = Holding(1);
  // Both permits are taken: a third run is refused like a held lock.
  EXPECT_EQ(RunOrdo(Run({"true"}, "2")).code, 1);
  // A different limit while permits are held is ordo's error, and changes nothing.
  EXPECT_EQ(RunOrdo(Run({"true"}, "3")).code, 125);
  first->WriteLine("0");
  EXPECT_EQ(ExitCode(first->Wait()), 0);
  // The freed slot is the next one handed out.
  NextRunGetsSlot(0);
  second->WriteLine("0");
  EXPECT_EQ(ExitCode(second->Wait()), 0);
}

TEST_F(LimitTest, RunHoldsOneOfNPermitsAndExportsItsSlot) { RunHoldsOneOfNPermits(); }
TEST_F(FlockLimitTest, RunHoldsOneOfNPermitsAndExportsItsSlot) { RunHoldsOneOfNPermits(); }

TEST_F(FlockLimitTest, AKilledRunsSlotComesBackAtOnce) {
  auto first = Holding(0);
  auto second = Holding(1);
  EXPECT_EQ(RunOrdo(Run({"true"}, "2")).code, 1);
  // SIGKILL leaves no time to release: the kernel drops the permit with ordo's descriptors (the
  // command, still running, must not have inherited them). The last copy is the sentinel's,
  // which closes it once it has killed the job's group — a few milliseconds after ordo died — so
  // the next run waits for the permit rather than trying once; no TTL is involved.
  first->Kill(SIGKILL);
  first->Wait();
  auto next = RunOrdo(Cat({"run", "--backend", Backend(), "--lock", "sem", "--limit", "2",
                           "--wait", "5s", "--"},
                          {"sh", "-c", "echo $ORDO_LOCK_SLOT"}));
  EXPECT_EQ(next.code, 0);
  EXPECT_EQ(next.out, "0\n");
  second->WriteLine("0");
  EXPECT_EQ(ExitCode(second->Wait()), 0);
}

TEST_F(LimitTest, PlainRunsExportNoSlotAndBadLimitsAreRefused) {
  auto r = RunOrdo(Cat({"run", "--backend", Backend(), "--lock", "plain", "--"},
                       {"sh", "-c", "echo ${ORDO_LOCK_SLOT-unset}"}));
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "unset\n");
  EXPECT_EQ(RunOrdo(Run({"true"}, "0")).code, 125);
  EXPECT_EQ(RunOrdo(Run({"true"}, "10001")).code, 125);
}

TEST_F(LimitTest, LockAcquirePrintsThePermitsSlot) {
  for (int slot = 0; slot < 2; ++slot) {
    auto r = RunOrdo({"lock", "acquire", "--backend", Backend(), "--limit", "2", "sem"});
    ASSERT_EQ(r.code, 0) << r.out;
    const auto lease = nlohmann::json::parse(r.out);
    EXPECT_EQ(lease["slot"], slot);
  }
  EXPECT_EQ(RunOrdo({"lock", "acquire", "--backend", Backend(), "--limit", "2", "sem"}).code, 1);
  auto status = RunOrdo({"lock", "status", "--backend", Backend(), "sem"});
  ASSERT_EQ(status.code, 0);
  EXPECT_EQ(nlohmann::json::parse(status.out)["limit"], 2);
}

}  // namespace
}  // namespace ordo::testing
