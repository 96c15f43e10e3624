#include "defaults.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "test_support.h"

namespace ordo::cli {
namespace {

TEST(DefaultsTest, LockNameIsAStableHashOfDistinctArguments) {
  const std::string name = DefaultLockName({"backup", "--full"});
  EXPECT_EQ(name, DefaultLockName({"backup", "--full"}));
  EXPECT_EQ(name.size(), 4u + 16u);
  EXPECT_TRUE(name.starts_with("run-"));
  EXPECT_EQ(name.find_first_not_of("0123456789abcdef", 4), std::string::npos);
  EXPECT_NE(DefaultLockName({"a b"}), DefaultLockName({"a", "b"}));
  EXPECT_NE(DefaultLockName({"ab", ""}), DefaultLockName({"a", "b"}));
  EXPECT_NE(DefaultLockName({"a", "b"}), DefaultLockName({"b", "a"}));
  // Pinned: cron lines written today must keep excluding each other after an upgrade.
  EXPECT_EQ(DefaultLockName({}), "run-cbf29ce484222325");
}

TEST(DefaultsTest, LockDirectoryDependsOnTheUserAlone) {
  EXPECT_EQ(DefaultLockDir(1000, "/home/u"), "/home/u/.local/state/ordo/locks");
  EXPECT_EQ(DefaultLockDir(1000, "/home/u/"), "/home/u/.local/state/ordo/locks");
  EXPECT_EQ(DefaultLockDir(1000, "/"), "/.local/state/ordo/locks");
  EXPECT_EQ(DefaultLockDir(0, "/root"), "/var/lib/ordo/locks");
  EXPECT_EQ(DefaultLockDir(0, "/home/someone-else"), "/var/lib/ordo/locks");
}

TEST(DefaultsTest, HomeComesFromTheUserDatabaseNotFromTheEnvironment) {
  passwd* me = getpwuid(geteuid());
  if (me == nullptr) GTEST_SKIP() << "no user database entry for this uid";
  // `sudo -u` can keep the caller's $HOME, `env -i` has none: neither changes the answer.
  for (const char* env : {static_cast<const char*>(nullptr), "", "/home/someone-else", "rel"}) {
    auto home = HomeOf(geteuid(), env);
    ASSERT_TRUE(home.ok()) << home.status().ToString();
    EXPECT_EQ(*home, me->pw_dir);
  }
}

TEST(DefaultsTest, HomeOfAUidWithoutAnEntry) {
  // The largest uid is reserved ((uid_t)-1 is "no uid"): nobody has an entry for one below it.
  const uid_t ghost = static_cast<uid_t>(-2);
  if (getpwuid(ghost) != nullptr) GTEST_SKIP();
  auto from_env = HomeOf(ghost, "/srv/home");
  ASSERT_TRUE(from_env.ok());
  EXPECT_EQ(*from_env, "/srv/home");
  auto none = HomeOf(ghost, "relative");
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("--backend"), std::string::npos);
}

TEST(DefaultsTest, LegacyLockDirectoriesOfOrdo01) {
  EXPECT_EQ(LegacyLockDirs("/run/user/1000", 1000),
            (std::vector<std::string>{"/run/user/1000/ordo", "/tmp/ordo-1000"}));
  EXPECT_EQ(LegacyLockDirs("/tmp/xdg", 1000),
            (std::vector<std::string>{"/tmp/xdg/ordo", "/run/user/1000/ordo", "/tmp/ordo-1000"}));
  EXPECT_EQ(LegacyLockDirs(nullptr, 1000),
            (std::vector<std::string>{"/run/user/1000/ordo", "/tmp/ordo-1000"}));
  EXPECT_EQ(LegacyLockDirs("", 0), (std::vector<std::string>{"/run/user/0/ordo", "/run/lock/ordo"}));
}

TEST(DefaultsTest, StatePath) {
  EXPECT_EQ(DefaultStatePath("/x/state", "/home/u", 0), "/var/lib/ordo/ordo.db");
  EXPECT_EQ(DefaultStatePath("/x/state", "/home/u", 1000), "/x/state/ordo/ordo.db");
  EXPECT_EQ(DefaultStatePath(nullptr, "/home/u", 1000), "/home/u/.local/state/ordo/ordo.db");
  EXPECT_EQ(DefaultStatePath("", "/home/u", 1000), "/home/u/.local/state/ordo/ordo.db");
}

TEST(DefaultsTest, PrivateDirectoryIsCreatedAndCheckedNeverTrusted) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/ordo";
  ASSERT_TRUE(EnsurePrivateDir(dir).ok());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(EnsurePrivateDir(dir).ok()) << "idempotent";

  const std::string link = tmp.path() + "/link";
  ASSERT_EQ(symlink(dir.c_str(), link.c_str()), 0);
  EXPECT_EQ(EnsurePrivateDir(link).code(), StatusCode::kInvalidArgument) << "a planted symlink";
  const std::string open = tmp.path() + "/open";
  ASSERT_EQ(mkdir(open.c_str(), 0700), 0);
  ASSERT_EQ(chmod(open.c_str(), 0777), 0);
  EXPECT_EQ(EnsurePrivateDir(open).code(), StatusCode::kInvalidArgument);
}

TEST(DefaultsTest, DirectoriesAndUrls) {
  testing::TempDir tmp;
  ASSERT_TRUE(EnsureDirs(tmp.path() + "/a/b/c").ok());
  EXPECT_TRUE(std::filesystem::is_directory(tmp.path() + "/a/b/c"));
  EXPECT_EQ(UrlPath("/home/j d/100%.db"), "/home/j%20d/100%25.db");
}

}  // namespace
}  // namespace ordo::cli
