// `ordo elect` and `ordo leader` as a user runs them: the real binary, real processes, a flock
// backend in a private directory (ORDO_BACKEND).
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ordo_process.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// A job that prints its term and token, then runs until a line arrives on its stdin.
const std::vector<std::string> kLeadUntilTold = {
    "sh", "-c", "echo \"term=$ORDO_LEADER_TERM token=$ORDO_FENCING_TOKEN\"; read code; exit $code"};

class ElectCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HasBackend("flock")) GTEST_SKIP() << "the flock:// backend is not in this build";
    setenv("ORDO_BACKEND", ("flock://" + runtime_.path() + "/ordo").c_str(), 1);
  }
  TempDir runtime_;
};

std::uint64_t TermOf(const std::string& line) {
  // "term=T token=T"
  EXPECT_EQ(line.rfind("term=", 0), 0u) << line;
  const std::uint64_t term = std::stoull(line.substr(5));
  EXPECT_NE(line.find("token=" + std::to_string(term)), std::string::npos)
      << "the term is the fencing token: " << line;
  return term;
}

TEST_F(ElectCliTest, LeaderRunsTheCommandWithItsTermAndTheNextOneTakesOver) {
  auto none = RunOrdo({"leader", "sched"});
  ASSERT_EQ(none.code, 0);
  auto j = nlohmann::json::parse(none.out);
  EXPECT_TRUE(j["leader"].is_null());
  EXPECT_EQ(j["last_term"], 0);

  auto first = StartOrdo(Cat({"elect", "sched", "--candidate", "host-a:8080", "--"},
                             kLeadUntilTold));
  const std::uint64_t first_term = TermOf(first->ReadLine());
  auto shown = RunOrdo({"leader", "sched"});
  ASSERT_EQ(shown.code, 0);
  j = nlohmann::json::parse(shown.out);
  EXPECT_EQ(j["name"], "sched");
  EXPECT_EQ(j["leader"]["candidate"], "host-a:8080");
  EXPECT_EQ(j["leader"]["term"], first_term);

  // With a wait, a second candidate gives up (exit 1) while the first leads.
  EXPECT_EQ(RunOrdo({"elect", "sched", "--wait", "200ms", "--", "true"}).code, 1);
  // Without one it campaigns until the first resigns, then leads with a larger term.
  auto watcher = StartOrdo({"leader", "sched", "--watch"});
  EXPECT_EQ(nlohmann::json::parse(watcher->ReadLine())["leader"]["term"], first_term);
  auto second = StartOrdo(Cat({"elect", "sched", "--candidate", "host-b:8080", "--"},
                              kLeadUntilTold));
  first->WriteLine("0");
  EXPECT_EQ(ExitCode(first->Wait()), 0);
  const std::uint64_t second_term = TermOf(second->ReadLine());
  EXPECT_GT(second_term, first_term);
  // The watcher saw the change (perhaps through "no leader" first).
  for (;;) {
    auto line = nlohmann::json::parse(watcher->ReadLine(10s));
    if (line["leader"].is_null()) continue;
    EXPECT_EQ(line["leader"]["term"], second_term);
    EXPECT_EQ(line["leader"]["candidate"], "host-b:8080");
    break;
  }
  second->WriteLine("3");
  EXPECT_EQ(ExitCode(second->Wait()), 3) << "the command's own exit code";
  watcher->Kill(SIGTERM);
  watcher->Wait();
}

TEST_F(ElectCliTest, BadInputIsAnOrdoError) {
  EXPECT_EQ(RunOrdo({"elect", "sched", "--candidate", "", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"elect", "sched", "--candidate", std::string(257, 'x'), "--", "true"}).code,
            125);
  EXPECT_EQ(RunOrdo({"elect", "../x", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"elect", "sched"}).code, 125) << "no command";
  EXPECT_EQ(RunOrdo({"leader", "../x"}).code, 125);
}

}  // namespace
}  // namespace ordo::testing
