// `ordo elect` and `ordo leader` as a user runs them: the real binary, real processes, a flock
// backend in a private directory (ORDO_BACKEND).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ordo_process.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct WithStderr {
  int code = -1;
  std::string err;  // everything ordo wrote to stderr
};

// `ordo args…` to completion with its stderr in a file of `dir`, to check its messages.
WithStderr RunOrdoForStderr(const TempDir& dir, const std::vector<std::string>& args) {
  const std::string err_path = dir.path() + "/stderr";
  std::string line = "exec " + ShellQuote(ORDO_BINARY);
  for (const std::string& arg : args) line += " " + ShellQuote(arg);
  Child ordo({"/bin/sh", "-c", line + " 2>" + ShellQuote(err_path)});
  ordo.CloseStdin();
  while (!(ordo.ReadLine().empty() && ordo.eof())) {
  }
  WithStderr out;
  out.code = ExitCode(ordo.Wait());
  out.err = ReadFile(err_path);
  return out;
}

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

// Every error of `ordo elect` and `ordo leader` names the command the user typed, never the
// `ordo run` that elect shares its machinery with.
TEST_F(ElectCliTest, ErrorsArePrefixedWithTheirCommand) {
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string prefix;
    std::string names;  // a word of the problem the message must name
  };
  const std::vector<Case> cases = {
      {{"elect", "sched", "--candidate", "", "--", "true"}, 125, "ordo elect: ", "candidate"},
      {{"elect", "../x", "--", "true"}, 125, "ordo elect: ", "election name '../x'"},
      {{"elect", "sched", "--ttl", "5x", "--", "true"}, 125, "ordo elect: ", "--ttl"},
      {{"elect", "sched", "--backend", "bogus://x", "--", "true"}, 125, "ordo elect: ", "bogus"},
      {{"elect", "sched", "--", runtime_.path() + "/no-such-program"}, 127, "ordo elect: ",
       "no-such-program"},
      {{"leader", "../x"}, 125, "ordo leader: ", "election name '../x'"},
      {{"leader", "sched", "--bogus"}, 125, "ordo leader: ", "--bogus"},
      {{"leader", "sched", "--backend", "bogus://x"}, 125, "ordo leader: ", "bogus"},
  };
  for (const Case& c : cases) {
    const WithStderr run = RunOrdoForStderr(runtime_, c.args);
    std::string shown = "ordo";
    for (const std::string& arg : c.args) shown += " " + arg;
    SCOPED_TRACE(shown + ": " + run.err);
    EXPECT_EQ(run.code, c.code);
    EXPECT_EQ(run.err.rfind(c.prefix, 0), 0u) << "the first line starts with " << c.prefix;
    EXPECT_NE(run.err.find(c.names), std::string::npos);
    EXPECT_EQ(run.err.find("ordo run"), std::string::npos);
  }
}

// On a lease backend, leadership is lost when its renewals stop for longer than the TTL: here
// the elected ordo is frozen, a second candidate is elected with a larger term, and the first,
// woken, stops its command (SIGTERM, which the command traps and survives, then SIGKILL after
// the grace) and exits 75, saying which election and term it lost.
TEST(ElectLeaseTest, LostLeadershipStopsTheCommandAndExits75) {
  if (!HasBackend("sqlite")) GTEST_SKIP() << "the sqlite:// backend is not in this build";
  TempDir dir;
  const std::string url = "sqlite://" + dir.path() + "/elect.db";
  const std::string err_path = dir.path() + "/stderr";
  // Prints its term and pid, reports SIGTERM and carries on, so only SIGKILL ends it.
  const std::string job = dir.path() + "/job.sh";
  std::ofstream(job) << "trap 'echo got-term' TERM\n"
                        "echo \"$ORDO_LEADER_TERM $$\"\n"
                        "while :; do sleep 0.05; done\n";
  std::string line = "exec " + ShellQuote(ORDO_BINARY);
  for (const char* arg : {"elect", "paused", "--backend", url.c_str(), "--candidate", "a",
                                 "--ttl", "500ms", "--kill-grace", "400ms", "--", "sh",
                                 job.c_str()}) {
    line += " " + ShellQuote(arg);
  }
  Child frozen({"/bin/sh", "-c", line + " 2>" + ShellQuote(err_path)});
  const std::string first = frozen.ReadLine();
  ASSERT_FALSE(first.empty()) << ReadFile(err_path);
  const std::uint64_t first_term = std::stoull(first);
  const pid_t job_pid = std::stoi(first.substr(first.find(' ') + 1));

  frozen.Kill(SIGSTOP);
  // Blocks until the frozen leadership has expired (backend clock) and b leads.
  auto second = RunOrdo({"elect", "paused", "--backend", url, "--candidate", "b", "-w", "10s",
                         "--", "sh", "-c", "echo $ORDO_LEADER_TERM"});
  ASSERT_EQ(second.code, 0);
  EXPECT_GT(std::stoull(second.out), first_term);

  frozen.Kill(SIGCONT);
  EXPECT_EQ(frozen.ReadLine(10s), "got-term");
  const auto term_at = Clock::now();
  EXPECT_EQ(ExitCode(frozen.Wait()), 75);
  EXPECT_GE(Clock::now() - term_at, 300ms) << "SIGKILL only after the grace period";
  EXPECT_TRUE(GoneWithin(job_pid, 1s));
  const std::string err = ReadFile(err_path);
  EXPECT_NE(err.find("ordo elect: leadership of election 'paused' (term " +
                     std::to_string(first_term) + ") was lost; SIGTERM"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("ordo elect: the job is still running after the grace period; SIGKILL"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("ordo run"), std::string::npos) << err;
}

}  // namespace
}  // namespace ordo::testing
