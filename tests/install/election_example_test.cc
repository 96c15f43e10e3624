// examples/election as built by ordo_install_test against the installed package, in real
// processes: two candidates campaign; the leader is frozen (SIGSTOP) in the middle of a step,
// past its TTL; the other takes over; the old leader, woken, makes the transition it had
// prepared and is refused with kStaleToken although the version it read is still current.
// Runs on sqlite:// and on postgresql:// (a throwaway cluster).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "pg_cluster.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kTtl = 500ms;
constexpr auto kStep = 1500ms;

// The next line of `child` that starts with `prefix` (earlier lines are kept in `log`); empty
// at EOF or after `timeout`.
std::string LineStartingWith(Child& child, const std::string& prefix, std::string& log,
                             std::chrono::milliseconds timeout = 30s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const std::string line = child.ReadLine(
        std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
    if (line.empty() && child.eof()) return "";
    log += line + "\n";
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

std::uint64_t NumberAfter(const std::string& line, const std::string& word) {
  const auto at = line.find(word);
  return at == std::string::npos ? 0 : std::stoull(line.substr(at + word.size()));
}

int ExitCodeOf(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

void PausedLeaderIsFencedOff(const std::string& url) {
  const std::string election = "deploy-" + std::to_string(getpid());
  const std::string ttl = std::to_string(kTtl.count());
  const std::string step = std::to_string(kStep.count());
  std::string log_a;
  std::string log_b;
  Child a({ORDO_ELECTION_EXAMPLE, url, election, "a", ttl, step});
  const std::string leads = LineStartingWith(a, "a: leader, term ", log_a);
  ASSERT_FALSE(leads.empty()) << log_a;
  const std::uint64_t term_a = NumberAfter(leads, "term ");
  // b's steps are twice as long, so that its first write comes well after a has woken.
  Child b({ORDO_ELECTION_EXAMPLE, url, election, "b", ttl, std::to_string(2 * kStep.count()),
           "2"});
  ASSERT_FALSE(LineStartingWith(b, "b: campaigning", log_b).empty()) << log_b;

  // a is inside its first step (between its read and its transition): freeze it there.
  const std::string read = LineStartingWith(a, "a: term " + std::to_string(term_a) + ": read version ", log_a);
  ASSERT_FALSE(read.empty()) << log_a;
  const auto read_at = Clock::now();
  a.Kill(SIGSTOP);
  const std::uint64_t version = NumberAfter(read, "read version ");

  const std::string b_leads = LineStartingWith(b, "b: leader, term ", log_b);
  ASSERT_FALSE(b_leads.empty()) << log_b;
  const std::uint64_t term_b = NumberAfter(b_leads, "term ");
  EXPECT_GT(term_b, term_a) << "terms grow";
  // Wake a once its step is over, so that it writes at once.
  std::this_thread::sleep_until(read_at + kStep);
  a.Kill(SIGCONT);

  const std::string refused = LineStartingWith(a, "a: term " + std::to_string(term_a) + ": running -> upgrading refused", log_a);
  EXPECT_NE(refused.find("(version " + std::to_string(version) + " still current)"),
            std::string::npos)
      << log_a;
  EXPECT_NE(refused.find("stale_token"), std::string::npos) << log_a;
  EXPECT_FALSE(LineStartingWith(a, "a: deposed: the leader is b, term " + std::to_string(term_b),
                                log_a)
                   .empty())
      << log_a;
  EXPECT_EQ(ExitCodeOf(a.Wait()), 3) << log_a;

  // b, the live leader, moves the state on from the version a could not change.
  const std::string moved =
      LineStartingWith(b, "b: term " + std::to_string(term_b) + ": running -> upgrading", log_b);
  EXPECT_EQ(NumberAfter(moved, "at version "), version + 1) << log_b;
  EXPECT_FALSE(
      LineStartingWith(b, "b: term " + std::to_string(term_b) + ": upgrading -> running", log_b)
          .empty())
      << log_b;
  EXPECT_EQ(ExitCodeOf(b.Wait()), 0) << log_b;
  std::printf("%s%s", log_a.c_str(), log_b.c_str());
}

TEST(ElectionExampleTest, PausedLeaderIsFencedOffOnSqlite) {
  TempDir dir;
  PausedLeaderIsFencedOff("sqlite://" + dir.path() + "/election.db");
}

TEST(ElectionExampleTest, PausedLeaderIsFencedOffOnPostgresql) {
  PausedLeaderIsFencedOff(SharedPgCluster().Url("cas"));
}

}  // namespace
}  // namespace ordo::testing
