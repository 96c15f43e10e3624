#include "command_line.h"

#include <cstdlib>
#include <sstream>

#include <gtest/gtest.h>

namespace ordo::cli {
namespace {

using namespace std::chrono_literals;

Command Parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"ordo"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  std::ostringstream err;
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), out, err);
}

TEST(CommandLineTest, RunDefaults) {
  unsetenv("ORDO_BACKEND");
  const Command c = Parse({"run", "--", "job.sh", "-n", "--lock", "x"});
  ASSERT_EQ(c.kind, Command::Kind::kRun);
  EXPECT_EQ(c.run.command, (std::vector<std::string>{"job.sh", "-n", "--lock", "x"}))
      << "everything after -- is the command's";
  EXPECT_EQ(c.run.backend, "");
  EXPECT_EQ(c.run.lock, "");
  EXPECT_EQ(c.run.ttl, 30s);
  EXPECT_EQ(c.run.wait, 0ms);
  EXPECT_EQ(c.run.mode, LockMode::kExclusive);
  EXPECT_EQ(c.run.conflict_exit_code, 1);
  EXPECT_EQ(c.run.lost_exit_code, 75);
  EXPECT_EQ(c.run.kill_grace, 10s);
  EXPECT_EQ(c.run.hold_at_least, 0ms);
}

TEST(CommandLineTest, RunLongAndShortForms) {
  Command c = Parse({"run", "-w", "1.5", "-s", "-E", "3", "-l", "nightly", "-b", "inproc:",
                     "--", "true"});
  ASSERT_EQ(c.kind, Command::Kind::kRun);
  EXPECT_EQ(c.run.wait, 1500ms) << "fractional seconds, as flock -w";
  EXPECT_EQ(c.run.mode, LockMode::kShared);
  EXPECT_EQ(c.run.conflict_exit_code, 3);
  EXPECT_EQ(c.run.lock, "nightly");
  EXPECT_EQ(c.run.backend, "inproc:");

  c = Parse({"run", "--wait", "2m", "--shared", "--conflict-exit-code", "4", "--lock", "n",
             "--backend", "flock:///x", "--ttl", "500ms", "--lost-exit-code", "9",
             "--kill-grace", "0", "--hold-at-least", "1h", "--owner", "me", "--", "true"});
  ASSERT_EQ(c.kind, Command::Kind::kRun);
  EXPECT_EQ(c.run.wait, 2min);
  EXPECT_EQ(c.run.mode, LockMode::kShared);
  EXPECT_EQ(c.run.conflict_exit_code, 4);
  EXPECT_EQ(c.run.ttl, 500ms);
  EXPECT_EQ(c.run.lost_exit_code, 9);
  EXPECT_EQ(c.run.kill_grace, 0ms);
  EXPECT_EQ(c.run.hold_at_least, 1h);
  EXPECT_EQ(c.run.owner, "me");

  EXPECT_EQ(Parse({"run", "-x", "--", "t"}).run.mode, LockMode::kExclusive);
  EXPECT_EQ(Parse({"run", "--exclusive", "--", "t"}).run.mode, LockMode::kExclusive);
  EXPECT_EQ(Parse({"run", "-n", "--", "t"}).run.wait, 0ms);
  EXPECT_EQ(Parse({"run", "--timeout", "7", "--", "t"}).run.wait, 7s);
  EXPECT_EQ(Parse({"run", "-w", "5s", "job"}).run.command, std::vector<std::string>{"job"})
      << "-- may be left out when the command starts with no dash";
}

TEST(CommandLineTest, BackendFromTheEnvironment) {
  setenv("ORDO_BACKEND", "inproc:", 1);
  EXPECT_EQ(Parse({"run", "--", "t"}).run.backend, "inproc:");
  EXPECT_EQ(Parse({"run", "--backend", "flock:///y", "--", "t"}).run.backend, "flock:///y");
  unsetenv("ORDO_BACKEND");
}

TEST(CommandLineTest, ErrorsAre125HelpAndVersionAre0) {
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"run"}, {"run", "--ttl", "99ms", "--", "t"},
        {"run", "--ttl", "25h", "--", "t"}, {"run", "--wait", "x", "--", "t"},
        {"run", "-s", "-x", "--", "t"}, {"run", "-n", "-w", "1", "--", "t"},
        {"run", "--lost-exit-code", "-1", "--", "t"}, {"nosuch"}, {},
        {"lock"}, {"lock", "acquire"}, {"lock", "release", "x"},
        {"serve", "--threads", "x"}, {"serve", "--max-body", "0"},
        {"serve", "--events-ring", "-1"}, {"serve", "--events-ring", "2000000"}}) {
    const Command c = Parse(bad);
    EXPECT_EQ(c.kind, Command::Kind::kDone);
    EXPECT_EQ(c.exit_code, 125) << ::testing::PrintToString(bad);
  }
  EXPECT_EQ(Parse({"--help"}).exit_code, 0);
  EXPECT_EQ(Parse({"--version"}).exit_code, 0);
  EXPECT_EQ(Parse({"run", "--help"}).kind, Command::Kind::kDone);
}

TEST(CommandLineTest, LockSubcommands) {
  Command c = Parse({"lock", "acquire", "deploy", "--ttl", "5m", "-w", "2", "-s", "--owner",
                     "ci", "-E", "7"});
  ASSERT_EQ(c.kind, Command::Kind::kLock);
  EXPECT_EQ(c.lock.action, LockAction::kAcquire);
  EXPECT_EQ(c.lock.name, "deploy");
  EXPECT_EQ(c.lock.ttl, 5min);
  EXPECT_EQ(c.lock.wait, 2s);
  EXPECT_EQ(c.lock.mode, LockMode::kShared);
  EXPECT_EQ(c.lock.owner, "ci");
  EXPECT_EQ(c.lock.conflict_exit_code, 7);
  c = Parse({"lock", "renew", "deploy", "--token", "42", "--ttl", "1m"});
  EXPECT_EQ(c.lock.action, LockAction::kRenew);
  EXPECT_EQ(c.lock.token, 42u);
  EXPECT_EQ(c.lock.ttl, 1min);
  c = Parse({"lock", "release", "deploy", "-t", "43"});
  EXPECT_EQ(c.lock.action, LockAction::kRelease);
  EXPECT_EQ(c.lock.token, 43u);
  c = Parse({"lock", "status", "deploy", "--backend", "inproc:"});
  EXPECT_EQ(c.lock.action, LockAction::kStatus);
  EXPECT_EQ(c.lock.backend, "inproc:");
}

TEST(CommandLineTest, ServeAndMigrate) {
  Command c = Parse({"serve", "--backend", "inproc:", "--listen", "0.0.0.0:9000", "--max-body",
                     "2048", "--threads", "8", "--max-wait", "5m"});
  ASSERT_EQ(c.kind, Command::Kind::kServe);
  EXPECT_EQ(c.serve.backend, "inproc:");
  EXPECT_EQ(c.serve.serve.listen, "0.0.0.0:9000");
  EXPECT_EQ(c.serve.serve.max_body, 2048u);
  EXPECT_EQ(c.serve.serve.threads, 8);
  EXPECT_EQ(c.serve.serve.max_wait, 5min);
  c = Parse({"serve"});
  EXPECT_EQ(c.serve.serve.listen, "127.0.0.1:7575");
  EXPECT_EQ(c.serve.serve.max_body, std::size_t{1} << 20);
  EXPECT_EQ(c.serve.serve.events_ring, http::ServeOptions::kDefaultEventsRing);
  EXPECT_EQ(Parse({"serve", "--events-ring", "0"}).serve.serve.events_ring, 0u);
  c = Parse({"migrate", "--backend", "sqlite:///x.db"});
  ASSERT_EQ(c.kind, Command::Kind::kMigrate);
  EXPECT_EQ(c.migrate.backend, "sqlite:///x.db");
}

}  // namespace
}  // namespace ordo::cli
