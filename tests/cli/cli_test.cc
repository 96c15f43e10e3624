// `ordo run`, `ordo lock`, `ordo migrate`, `ordo serve` as a user runs them: the real binary,
// real processes, a flock backend in a private directory (ORDO_BACKEND). The default backend,
// which is shared by every run of the user, is tested in default_lock_test.cc.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ordo_process.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// A shell job that says "ready" and then runs until a line arrives on its stdin; it exits
// with the number in that line.
const std::vector<std::string> kHoldUntilTold = {"sh", "-c", "echo ready; read code; exit $code"};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HasBackend("flock")) GTEST_SKIP() << "the flock:// backend is not in this build yet";
    // Each test has its own lock directory, so that fixed lock names do not meet other runs.
    setenv("ORDO_BACKEND", ("flock://" + runtime_.path() + "/ordo").c_str(), 1);
  }

  // `ordo run` holding `lock` in the background until told to finish.
  std::unique_ptr<Child> Holder(const std::vector<std::string>& flags) {
    auto holder = StartOrdo(Cat(Cat({"run"}, flags), Cat({"--"}, kHoldUntilTold)));
    EXPECT_EQ(holder->ReadLine(), "ready");
    return holder;
  }

  TempDir runtime_;
};

TEST_F(CliTest, VersionAndHelpOnEverySubcommand) {
  auto version = RunOrdo({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_TRUE(version.out.starts_with("ordo ")) << version.out;
  for (std::vector<std::string> sub :
       {std::vector<std::string>{"run"}, {"lock"}, {"lock", "acquire"}, {"lock", "renew"},
        {"lock", "release"}, {"lock", "status"}, {"lock", "list"}, {"migrate"}, {"serve"}}) {
    auto help = RunOrdo(Cat(sub, {"--help"}));
    EXPECT_EQ(help.code, 0) << sub.back();
    EXPECT_NE(help.out.find("Examples:"), std::string::npos) << sub.back();
  }
  EXPECT_EQ(RunOrdo({}).code, 125) << "a subcommand is required";
}

TEST_F(CliTest, BadFlagsAreOrdoErrors) {
  EXPECT_EQ(RunOrdo({"run", "--no-such-flag", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "--ttl", "50ms", "--", "true"}).code, 125) << "smallest ttl is 100ms";
  EXPECT_EQ(RunOrdo({"run", "--ttl", "soon", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "-w", "-1", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "-s", "-x", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "-n", "-w", "1", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "-E", "256", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "--lock", "../etc/passwd", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "--"}).code, 125) << "no command";
  EXPECT_EQ(RunOrdo({"run", "--backend", "nosuch:///x", "--", "true"}).code, 125);
  EXPECT_EQ(RunOrdo({"run", "--hold-at-least", "1s", "--", "true"}).code, 125)
      << "flock locks end with ordo: holding them longer is impossible";
}

TEST_F(CliTest, ReturnsTheCommandsStatus) {
  EXPECT_EQ(RunOrdo({"run", "--", "sh", "-c", "exit 7"}).code, 7);
  EXPECT_EQ(RunOrdo({"run", "--", "true"}).code, 0);
  EXPECT_EQ(RunOrdo({"run", "--", "sh", "-c", "kill -TERM $$"}).code, 128 + SIGTERM);
  // A command that exits 127 itself is not mistaken for "not found" — nor the reverse.
  EXPECT_EQ(RunOrdo({"run", "--", "sh", "-c", "exit 127"}).code, 127);
}

TEST_F(CliTest, CommandNotFoundOrNotExecutable) {
  EXPECT_EQ(RunOrdo({"run", "--", "/nonexistent/command"}).code, 127);
  EXPECT_EQ(RunOrdo({"run", "--", "no-such-command-in-path-" + UniqueName("x")}).code, 127);
  TempDir dir;
  const std::string script = dir.path() + "/not-executable";
  std::ofstream(script) << "#!/bin/sh\nexit 0\n";
  chmod(script.c_str(), 0644);
  EXPECT_EQ(RunOrdo({"run", "--", script}).code, 126);
  EXPECT_EQ(RunOrdo({"run", "--", dir.path()}).code, 126) << "a directory";
}

TEST_F(CliTest, TheChildSeesItsLockAndAGrowingToken) {
  std::uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = RunOrdo({"run", "--lock", "tokens", "--", "sh", "-c",
                      "echo $ORDO_LOCK_NAME; echo $ORDO_FENCING_TOKEN"});
    ASSERT_EQ(r.code, 0);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(r.out, m, std::regex("tokens\n([0-9]+)\n"))) << r.out;
    const std::uint64_t token = std::stoull(m[1]);
    EXPECT_GT(token, last);
    last = token;
  }
}

TEST_F(CliTest, HeldLockExitsOneOrTheConflictCode) {
  auto holder = Holder({"--lock", "busy"});
  EXPECT_EQ(RunOrdo({"run", "--lock", "busy", "--", "true"}).code, 1);
  EXPECT_EQ(RunOrdo({"run", "-n", "--lock", "busy", "--", "true"}).code, 1);
  EXPECT_EQ(RunOrdo({"run", "--nonblock", "-l", "busy", "--", "true"}).code, 1);
  EXPECT_EQ(RunOrdo({"run", "-E", "9", "--lock", "busy", "--", "true"}).code, 9);
  EXPECT_EQ(RunOrdo({"run", "--conflict-exit-code", "0", "--lock", "busy", "--", "true"}).code,
            0);
  // The lock comes first: a held lock is 1 even when the command does not exist.
  EXPECT_EQ(RunOrdo({"run", "--lock", "busy", "--", "/nonexistent/command"}).code, 1);
  holder->WriteLine("0");
  EXPECT_EQ(ExitCode(holder->Wait()), 0);
  EXPECT_EQ(RunOrdo({"run", "--lock", "busy", "--", "true"}).code, 0) << "released after exit";
}

TEST_F(CliTest, SharedRunsTogetherExclusiveIsRefused) {
  auto first = Holder({"-s", "--lock", "catalog"});
  auto second = Holder({"--shared", "--lock", "catalog"});
  EXPECT_EQ(RunOrdo({"run", "-x", "--lock", "catalog", "--", "true"}).code, 1);
  EXPECT_EQ(RunOrdo({"run", "--exclusive", "--lock", "catalog", "--", "true"}).code, 1);
  EXPECT_EQ(RunOrdo({"run", "-s", "--lock", "catalog", "--", "true"}).code, 0);
  first->WriteLine("0");
  second->WriteLine("0");
  EXPECT_EQ(ExitCode(first->Wait()), 0);
  EXPECT_EQ(ExitCode(second->Wait()), 0);
  EXPECT_EQ(RunOrdo({"run", "-x", "--lock", "catalog", "--", "true"}).code, 0);
}

TEST_F(CliTest, IdenticalCommandLinesExcludeEachOtherByDefault) {
  auto holder = Holder({});
  EXPECT_EQ(RunOrdo(Cat({"run", "--"}, kHoldUntilTold)).code, 1) << "same argv, same lock";
  // Different argv, different lock; ordo's own options do not change the name.
  auto other = StartOrdo({"run", "--", "sh", "-c", "echo ready; read code; exit $code", "x"});
  EXPECT_EQ(other->ReadLine(), "ready");
  other->WriteLine("0");
  EXPECT_EQ(ExitCode(other->Wait()), 0);
  EXPECT_EQ(RunOrdo(Cat({"run", "-E", "3", "--ttl", "5s", "--"}, kHoldUntilTold)).code, 3);
  // Neither does the working directory.
  const std::string cwd = std::filesystem::current_path();
  std::filesystem::current_path("/");
  EXPECT_EQ(RunOrdo(Cat({"run", "--"}, kHoldUntilTold)).code, 1);
  std::filesystem::current_path(cwd);
  holder->WriteLine("0");
  EXPECT_EQ(ExitCode(holder->Wait()), 0);
}

TEST_F(CliTest, DefaultNameKeepsArgumentsDistinct) {
  auto name_of = [](const std::vector<std::string>& argv) {
    auto r = RunOrdo(Cat({"run", "--", "sh", "-c", "echo $ORDO_LOCK_NAME"}, argv));
    EXPECT_EQ(r.code, 0);
    return r.out;
  };
  const std::string a = name_of({"a b"});
  EXPECT_TRUE(std::regex_match(a, std::regex("run-[0-9a-f]{16}\n"))) << a;
  EXPECT_NE(a, name_of({"a", "b"}));
  EXPECT_NE(name_of({"ab", ""}), name_of({"a", "b"}));
  EXPECT_EQ(a, name_of({"a b"}));
}

TEST_F(CliTest, WaitThenRunOnceTheHolderReleases) {
  auto holder = Holder({"--lock", "queue"});
  auto waiter = StartOrdo({"run", "-w", "20", "--lock", "queue", "--", "sh", "-c", "echo ran"});
  // It must still be waiting: nothing runs while the lock is held.
  EXPECT_EQ(waiter->ReadLine(300ms), "");
  holder->WriteLine("0");
  EXPECT_EQ(ExitCode(holder->Wait()), 0);
  EXPECT_EQ(waiter->ReadLine(), "ran");
  EXPECT_EQ(ExitCode(waiter->Wait()), 0);
}

TEST_F(CliTest, WaitTimesOutWithTheConflictCode) {
  auto holder = Holder({"--lock", "slow"});
  for (std::string flag : {"-w", "--wait", "--timeout"}) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(RunOrdo({"run", flag, "0.3", "--lock", "slow", "--", "true"}).code, 1) << flag;
    EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms) << flag;
  }
  EXPECT_EQ(RunOrdo({"run", "-w", "200ms", "-E", "4", "--lock", "slow", "--", "true"}).code, 4);
  holder->WriteLine("0");
  EXPECT_EQ(ExitCode(holder->Wait()), 0);
}

TEST_F(CliTest, SignalWhileWaitingEndsTheWaitWithoutRunning) {
  auto holder = Holder({"--lock", "gate"});
  auto waiter = StartOrdo({"run", "-w", "60", "--lock", "gate", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(waiter->ReadLine(300ms), "");
  const auto start = std::chrono::steady_clock::now();
  waiter->Kill(SIGTERM);
  EXPECT_EQ(ExitCode(waiter->Wait()), 128 + SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(waiter->ReadLine(), "") << "the command never ran";
  holder->WriteLine("0");
  EXPECT_EQ(ExitCode(holder->Wait()), 0);
}

TEST_F(CliTest, SignalsReachTheJobAndItsStatusComesBack) {
  // The job traps SIGTERM and exits 42: that status is ordo's. "ready" comes once the
  // background sleep exists, so the forwarded SIGTERM reaches it too (else it would outlive the
  // test by a minute, holding CTest's output pipe).
  auto term = StartOrdo({"run", "--", "sh", "-c",
             "trap 'echo got-term; exit 42' TERM; sleep 60 & echo ready; wait"});
  ASSERT_EQ(term->ReadLine(), "ready");
  term->Kill(SIGTERM);
  EXPECT_EQ(term->ReadLine(), "got-term");
  EXPECT_EQ(ExitCode(term->Wait()), 42);
  for (int sig : {SIGINT, SIGHUP, SIGQUIT}) {
    // exec: one process, so no window in which the shell has the signal and a sleep it forks
    // a moment later does not (the shell would then wait out the sleep).
    auto job = StartOrdo({"run", "--", "sh", "-c", "echo ready; exec sleep 60"});
    ASSERT_EQ(job->ReadLine(), "ready");
    job->Kill(sig);
    EXPECT_EQ(ExitCode(job->Wait()), 128 + sig) << sig;
  }
}

TEST_F(CliTest, TheJobRunsInItsOwnProcessGroup) {
  // Field 5 of /proc/PID/stat is the process group.
  auto r = RunOrdo({"run", "--", "sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"});
  ASSERT_EQ(r.code, 0);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.out, m, std::regex("([0-9]+)\n([0-9]+)\n"))) << r.out;
  EXPECT_EQ(m[1], m[2]);
  EXPECT_NE(std::stoi(m[2]), getpgrp());
}

TEST_F(CliTest, AGrandchildIsKilledWithItsGroup) {
  auto job = StartOrdo({"run", "--", "sh", "-c", "sleep 60 & echo $!; wait"});
  const pid_t grandchild = std::stoi(job->ReadLine());
  job->Kill(SIGTERM);
  EXPECT_EQ(ExitCode(job->Wait()), 128 + SIGTERM);
  EXPECT_TRUE(GoneWithin(grandchild, 5s));
}

TEST_F(CliTest, SigkillOfOrdoKillsTheJobAndFreesTheLock) {
  auto job = StartOrdo({"run", "--lock", "orphan", "--", "sh", "-c",
            "sleep 60 & echo $$; echo $!; trap '' TERM; wait"});
  const pid_t child = std::stoi(job->ReadLine());
  const pid_t grandchild = std::stoi(job->ReadLine());
  job->Kill(SIGKILL);
  EXPECT_EQ(ExitCode(job->Wait()), 128 + SIGKILL);
  EXPECT_TRUE(GoneWithin(child, 5s)) << "PR_SET_PDEATHSIG";
  EXPECT_TRUE(GoneWithin(grandchild, 5s)) << "the sentinel kills the group";
  EXPECT_EQ(RunOrdo({"run", "-w", "5", "--lock", "orphan", "--", "true"}).code, 0);
}

TEST_F(CliTest, TheLockDescriptorIsNotInherited) {
  auto r = RunOrdo({"run", "--lock", "fds", "--", "sh", "-c", "ls -l /proc/$$/fd"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out.find(runtime_.path()), std::string::npos) << r.out;
}

TEST_F(CliTest, BackendFromTheEnvironment) {
  TempDir dir;
  setenv("ORDO_BACKEND", ("flock://" + dir.path()).c_str(), 1);
  EXPECT_EQ(RunOrdo({"run", "--lock", "env", "--", "true"}).code, 0);
  unsetenv("ORDO_BACKEND");
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/env") ||
              !std::filesystem::is_empty(dir.path()));
}

TEST_F(CliTest, LockStatusAfterRunsAndAcquireRefusedOnFlock) {
  ASSERT_EQ(RunOrdo({"run", "--lock", "seen", "--", "true"}).code, 0);
  auto status = RunOrdo({"lock", "status", "seen"});
  EXPECT_EQ(status.code, 0);
  EXPECT_NE(status.out.find("\"name\":\"seen\""), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\"holders\":[]"), std::string::npos) << status.out;
  auto never = RunOrdo({"lock", "status", "never-taken"});
  EXPECT_EQ(never.code, 0);
  EXPECT_NE(never.out.find("\"last_token\":0"), std::string::npos) << never.out;
  // A flock lock would die with `ordo lock acquire` itself.
  auto acquire = RunOrdo({"lock", "acquire", "seen"});
  EXPECT_EQ(acquire.code, 125);
  EXPECT_NE(acquire.out.find("\"error\":\"invalid_argument\""), std::string::npos);
  EXPECT_EQ(RunOrdo({"lock", "status", "../x"}).code, 125);
  EXPECT_EQ(RunOrdo({"lock", "renew", "seen"}).code, 125) << "--token is required";
}

TEST_F(CliTest, LockListAsATableAndAsJson) {
  ASSERT_EQ(RunOrdo({"run", "--lock", "list.free", "--", "true"}).code, 0);
  // While `ordo run` holds list.held, its child lists the locks.
  auto inside = RunOrdo({"run", "--lock", "list.held", "--owner", "lister", "--", ORDO_BINARY,
                         "lock", "list", "--prefix", "list.", "--json"});
  ASSERT_EQ(inside.code, 0) << inside.out;
  const auto listed = nlohmann::json::parse(inside.out, nullptr, false);
  ASSERT_TRUE(listed.is_object()) << inside.out;
  ASSERT_EQ(listed["locks"].size(), 2u) << inside.out;
  EXPECT_EQ(listed["locks"][0]["name"], "list.free");
  EXPECT_TRUE(listed["locks"][0]["holders"].empty());
  EXPECT_EQ(listed["locks"][1]["name"], "list.held");
  ASSERT_EQ(listed["locks"][1]["holders"].size(), 1u);
  EXPECT_EQ(listed["locks"][1]["holders"][0]["owner"], "lister");
  auto table = RunOrdo({"run", "--lock", "list.held", "--owner", "lister", "--", ORDO_BINARY,
                        "lock", "list", "--prefix", "list."});
  ASSERT_EQ(table.code, 0);
  EXPECT_TRUE(table.out.starts_with("NAME")) << table.out;
  EXPECT_NE(table.out.find("lister"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("free"), std::string::npos) << table.out;
  EXPECT_EQ(RunOrdo({"lock", "list", "--prefix", "../"}).code, 125);
}

TEST_F(CliTest, MigrateReportsOrFails) {
  auto ok = RunOrdo({"migrate", "--backend", "inproc:"});
  EXPECT_EQ(ok.code, 0);
  EXPECT_NE(ok.out.find("inproc:"), std::string::npos) << ok.out;
  EXPECT_EQ(RunOrdo({"migrate", "--backend", "nosuch://x"}).code, 125);
}

TEST_F(CliTest, ServeRejectsBadFlags) {
  EXPECT_EQ(RunOrdo({"serve", "--threads", "-1", "--backend", "inproc:"}).code, 125);
  EXPECT_EQ(RunOrdo({"serve", "--auth-file", "/nonexistent", "--backend", "inproc:"}).code, 125);
  EXPECT_EQ(RunOrdo({"serve", "--max-wait", "forever", "--backend", "inproc:"}).code, 125);
}

}  // namespace
}  // namespace ordo::testing
