// Process control on its own: spawn, exec failures, signal forwarding, kill escalation.
#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

extern char** environ;

namespace ordo::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class ProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto watch = SignalWatch::Create();
    ASSERT_TRUE(watch.ok()) << watch.status().ToString();
    signals_ = std::move(*watch);
  }

  JobSpec Spec(std::vector<std::string> argv) {
    JobSpec spec;
    spec.argv = std::move(argv);
    for (char** e = environ; *e != nullptr; ++e) spec.env.emplace_back(*e);
    spec.env.push_back("ORDO_TEST_VAR=seen");
    spec.mask = signals_->original_mask();
    spec.take_terminal = false;
    return spec;
  }

  int RunToEnd(std::vector<std::string> argv) {
    auto job = Job::Start(Spec(std::move(argv)));
    EXPECT_TRUE(job.ok()) << job.status().ToString();
    if (!job.ok()) return -1;
    return ExitCodeOf(Supervise(**job, *signals_, {}).wait_status);
  }

  // The job says "ready" on this pipe once its traps are set: a signal sent before that would
  // meet the shell's default action.
  std::string ReadyFd() {
    if (ready_[0] < 0) {
      EXPECT_EQ(pipe(ready_), 0);
      fcntl(ready_[0], F_SETFD, FD_CLOEXEC);
    }
    return std::to_string(ready_[1]);
  }
  void AwaitReady() {
    char c;
    EXPECT_EQ(read(ready_[0], &c, 1), 1);
  }
  void TearDown() override {
    for (int fd : ready_) {
      if (fd >= 0) close(fd);
    }
  }

  std::unique_ptr<SignalWatch> signals_;
  int ready_[2] = {-1, -1};
};

TEST_F(ProcessTest, ExitStatusAndEnvironment) {
  EXPECT_EQ(RunToEnd({"sh", "-c", "exit 3"}), 3);
  EXPECT_EQ(RunToEnd({"sh", "-c", "test \"$ORDO_TEST_VAR\" = seen"}), 0);
  EXPECT_EQ(RunToEnd({"sh", "-c", "kill -KILL $$"}), 128 + SIGKILL);
  EXPECT_EQ(RunToEnd({"sh", "-c", "exit 127"}), 127) << "the job's own 127 is not an exec failure";
}

TEST_F(ProcessTest, ExecFailuresAreReported) {
  auto missing = Job::Start(Spec({"/nonexistent/binary"}));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/binary"), std::string::npos);
  auto directory = Job::Start(Spec({"/"}));
  EXPECT_EQ(directory.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ProcessTest, ForwardsSignalsToTheGroup) {
  auto job = Job::Start(
      Spec({"sh", "-c", "trap 'exit 42' HUP; echo >&" + ReadyFd() + "; sleep 60 & wait"}));
  ASSERT_TRUE(job.ok());
  AwaitReady();
  // A signal sent to this process lands in the signalfd and is forwarded.
  kill(getpid(), SIGHUP);
  const JobOutcome outcome = Supervise(**job, *signals_, {});
  EXPECT_EQ(ExitCodeOf(outcome.wait_status), 42);
  EXPECT_EQ(outcome.forwarded, SIGHUP);
  EXPECT_FALSE(outcome.lost);
  // The background sleep may outlive its shell; left alone it would hold the test's stdout
  // open (and CTest waiting) for a minute. The group id stays the job's pid while it has members.
  kill(-(*job)->pid(), SIGKILL);
}

// A job that ignores SIGTERM, with its lease already reported lost.
class LostLeaseTest : public ProcessTest {
 protected:
  void SetUp() override {
    ProcessTest::SetUp();
    ASSERT_EQ(pipe2(lost_, O_CLOEXEC), 0);
    auto job = Job::Start(Spec(
        {"sh", "-c", "trap '' TERM; echo >&" + ReadyFd() + "; while :; do sleep 0.05; done"}));
    ASSERT_TRUE(job.ok());
    job_ = std::move(*job);
    AwaitReady();
    ASSERT_EQ(write(lost_[1], "x", 1), 1);
    options_.lost_fd = lost_[0];
  }
  void TearDown() override {
    close(lost_[0]);
    close(lost_[1]);
    ProcessTest::TearDown();
  }

  int lost_[2] = {-1, -1};
  std::unique_ptr<Job> job_;
  SuperviseOptions options_;
};

TEST_F(LostLeaseTest, EscalatesFromTermToKill) {
  options_.kill_grace = 200ms;
  const auto start = Clock::now();
  const JobOutcome outcome = Supervise(*job_, *signals_, options_);
  EXPECT_TRUE(outcome.lost);
  EXPECT_EQ(ExitCodeOf(outcome.wait_status), 128 + SIGKILL);
  EXPECT_GE(Clock::now() - start, 200ms);
}

TEST_F(LostLeaseTest, KillByShortensTheGrace) {
  options_.kill_grace = 60s;
  const auto start = Clock::now();
  options_.kill_by = [start] { return start + 300ms; };
  const JobOutcome outcome = Supervise(*job_, *signals_, options_);
  EXPECT_EQ(ExitCodeOf(outcome.wait_status), 128 + SIGKILL);
  EXPECT_LT(Clock::now() - start, 10s);
}

}  // namespace
}  // namespace ordo::cli
