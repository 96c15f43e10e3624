// `ordo run`'s default lock (no --backend, no ORDO_BACKEND) as cron, a login shell and an
// upgrade from ordo 0.1 meet it: the real binary in real processes, started through env(1) with
// the environments those callers give it. The default directory is the user's real one
// (/var/lib/ordo/locks for root, ~/.local/state/ordo/locks otherwise); every test uses lock
// names of its own and removes their files afterwards.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "ordo_process.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

namespace fs = std::filesystem;

class DefaultLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HasBackend("flock")) GTEST_SKIP() << "the flock:// backend is not in this build yet";
    unsetenv("ORDO_BACKEND");
    const passwd* me = getpwuid(geteuid());
    ASSERT_NE(me, nullptr) << "the tests need a user database entry for their uid";
    home_ = me->pw_dir;
    dir_ = geteuid() == 0 ? "/var/lib/ordo/locks" : home_ + "/.local/state/ordo/locks";
    job_ = UniqueName("job");
    lock_ = UniqueName("lock");
  }

  void TearDown() override {
    // Test names only: a real job's lock file must never be deleted (its counter would restart).
    std::error_code ignored;
    for (const auto& name : names_) fs::remove(dir_ + "/" + name, ignored);
  }

  // Like cron: HOME, LOGNAME, SHELL and a short PATH; no session variables.
  std::vector<std::string> CronEnv() const {
    return WithSanitizerOptions({"HOME=" + home_, "LOGNAME=cron", "SHELL=/bin/sh",
                                 "PATH=/usr/bin:/bin"});
  }

  // Like a login shell under logind, seen through `sudo -u` that kept the caller's HOME: a
  // runtime directory and an XDG state home of the session's, a HOME that is not the user's.
  std::vector<std::string> LoginEnv(const std::string& runtime_dir) const {
    return WithSanitizerOptions({"HOME=" + other_home_.path(), "PATH=/usr/local/bin:/usr/bin:/bin",
                                 "XDG_RUNTIME_DIR=" + runtime_dir,
                                 "XDG_STATE_HOME=" + other_home_.path() + "/state",
                                 "TERM=xterm", "USER=someone"});
  }

  // The sanitizer runtimes' settings (suppressions) are not the job's environment: keep them.
  static std::vector<std::string> WithSanitizerOptions(std::vector<std::string> env) {
    for (const char* var : {"ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"}) {
      if (const char* value = std::getenv(var)) env.push_back(std::string(var) + "=" + value);
    }
    return env;
  }

  // `env -i ENV… ordo ARGS…` in the background.
  std::unique_ptr<Child> Start(const std::vector<std::string>& env,
                               const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/env", "-i"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(ORDO_BINARY);
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<Child>(argv);
  }

  // The job: prints its lock name and token, then waits for a line on its stdin and exits with
  // the number in it. The unique last argument ($0 of sh -c) gives the test a default lock name
  // of its own.
  std::vector<std::string> HoldingJob() const {
    return {"sh", "-c", "echo $ORDO_LOCK_NAME $ORDO_FENCING_TOKEN; read code; exit $code", job_};
  }

  // Starts HoldingJob under `env`; returns it once it holds the lock, its token in *token.
  std::unique_ptr<Child> Hold(const std::vector<std::string>& env,
                              const std::vector<std::string>& flags, std::uint64_t* token) {
    auto holder = Start(env, Cat(Cat({"run"}, flags), Cat({"--"}, HoldingJob())));
    const std::string line = holder->ReadLine();
    std::smatch m;
    EXPECT_TRUE(std::regex_match(line, m, std::regex("(\\S+) ([0-9]+)"))) << "'" << line << "'";
    if (!m.empty()) {
      names_.push_back(m[1]);
      *token = std::stoull(m[2]);
    }
    return holder;
  }

  // Runs HoldingJob to completion (exit 0) under `env`: its exit code and token (0 if it did
  // not run).
  std::pair<int, std::uint64_t> RunJob(const std::vector<std::string>& env,
                                       const std::vector<std::string>& flags = {}) {
    auto child = Start(env, Cat(Cat({"run"}, flags), Cat({"--"}, HoldingJob())));
    const std::string line = child->ReadLine(std::chrono::seconds(30));
    std::uint64_t token = 0;
    std::smatch m;
    if (std::regex_match(line, m, std::regex("(\\S+) ([0-9]+)"))) {
      names_.push_back(m[1]);
      token = std::stoull(m[2]);
      child->WriteLine("0");
    }
    child->CloseStdin();
    return {ExitCode(child->Wait()), token};
  }

  std::string home_;
  std::string dir_;
  std::string job_;
  std::string lock_;
  std::vector<std::string> names_;
  TempDir runtime_;
  TempDir other_home_;
};

TEST_F(DefaultLockTest, CronAndALoginShellExcludeEachOther) {
  std::uint64_t token = 0;
  auto cron = Hold(CronEnv(), {}, &token);
  EXPECT_EQ(RunJob(LoginEnv(runtime_.path())).first, 1) << "a login shell while cron's copy runs";
  cron->WriteLine("0");
  EXPECT_EQ(ExitCode(cron->Wait()), 0);

  auto login = Hold(LoginEnv(runtime_.path()), {}, &token);
  EXPECT_EQ(RunJob(CronEnv()).first, 1) << "cron while the login shell's copy runs";
  login->WriteLine("0");
  EXPECT_EQ(ExitCode(login->Wait()), 0);
  EXPECT_EQ(RunJob(CronEnv()).first, 0) << "free again";
}

TEST_F(DefaultLockTest, TheDirectoryIsTheUsersPrivateOne) {
  EXPECT_EQ(RunJob(LoginEnv(runtime_.path())).first, 0);
  ASSERT_EQ(names_.size(), 1u);
  struct stat st;
  ASSERT_EQ(lstat((dir_ + "/" + names_[0]).c_str(), &st), 0) << "the lock file is in " << dir_;
  EXPECT_TRUE(S_ISREG(st.st_mode));
  ASSERT_EQ(lstat(dir_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_TRUE(fs::is_empty(runtime_.path())) << "nothing in the session's runtime directory";
  EXPECT_TRUE(fs::is_empty(other_home_.path())) << "nothing under a HOME that is not the user's";
}

TEST_F(DefaultLockTest, TokensKeepGrowingAfterTheRuntimeDirectoryIsRemoved) {
  // logind removes /run/user/UID at logout; the lock, and its counter, must not go with it.
  const std::string session = runtime_.path() + "/session";
  ASSERT_EQ(mkdir(session.c_str(), 0700), 0);
  auto [code1, first] = RunJob(LoginEnv(session));
  ASSERT_EQ(code1, 0);
  fs::remove_all(session);
  auto [code2, second] = RunJob(CronEnv());
  ASSERT_EQ(code2, 0);
  EXPECT_GT(second, first);
  ASSERT_EQ(mkdir(session.c_str(), 0700), 0);
  auto [code3, third] = RunJob(LoginEnv(session));
  ASSERT_EQ(code3, 0);
  EXPECT_GT(third, second) << "a new session continues the count";
}

TEST_F(DefaultLockTest, AnUpgradeFromTheOldDirectoryNeverRunsAJobTwice) {
  // ordo 0.1 kept the lock in $XDG_RUNTIME_DIR/ordo; its runs are what `--backend` on that
  // directory does today.
  const std::string old_url = "flock://" + runtime_.path() + "/ordo";
  const std::vector<std::string> old_flags = {"--backend", old_url, "--lock", lock_};
  const std::vector<std::string> new_flags = {"--lock", lock_};
  for (int i = 0; i < 3; ++i) ASSERT_EQ(RunJob(CronEnv(), old_flags).first, 0);
  names_.clear();

  // An old ordo holds the job: the new one, in the session that sees the old directory, waits.
  std::uint64_t old_token = 0;
  auto old_holder = Hold(CronEnv(), old_flags, &old_token);
  EXPECT_EQ(old_token, 4u) << "the fourth run of the old ordo";
  EXPECT_EQ(RunJob(LoginEnv(runtime_.path()), new_flags).first, 1);
  old_holder->WriteLine("0");
  EXPECT_EQ(ExitCode(old_holder->Wait()), 0);

  // A new ordo holds it: it holds the old lock too, so an old ordo does not start the job.
  std::uint64_t new_token = 0;
  auto new_holder = Hold(LoginEnv(runtime_.path()), new_flags, &new_token);
  EXPECT_GT(new_token, old_token) << "the new lock's tokens start above the old file's counter";
  EXPECT_EQ(RunJob(CronEnv(), old_flags).first, 1);
  new_holder->WriteLine("0");
  EXPECT_EQ(ExitCode(new_holder->Wait()), 0);

  // The old directory removed, as the README says to once no old ordo is left: tokens go on.
  fs::remove_all(runtime_.path() + "/ordo");
  auto [code, after] = RunJob(CronEnv(), new_flags);
  EXPECT_EQ(code, 0);
  EXPECT_GT(after, new_token);
  names_.push_back(lock_);
}

}  // namespace
}  // namespace ordo::testing
