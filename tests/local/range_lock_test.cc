// RangeLock: OFD byte-range locks on one shared file, across processes and within one.
#include "ordo_local/range_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kX = LockMode::kExclusive;
constexpr auto kS = LockMode::kShared;

class RangeLockTest : public ::testing::Test {
 protected:
  // A helper process that locks [offset, offset+length) of the file; returns its first line.
  std::unique_ptr<Child> Holder(std::uint64_t offset, std::uint64_t length, const char* mode,
                                std::string* line, long wait_ms = 0) {
    auto child = std::make_unique<Child>(std::vector<std::string>{
        ORDO_LOCAL_HELPER, "range", file_, std::to_string(offset), std::to_string(length), mode,
        std::to_string(wait_ms)});
    *line = child->ReadLine();
    return child;
  }

  StatusCode Try(std::uint64_t offset, std::uint64_t length, LockMode mode) {
    return RangeLock::Lock(file_, offset, length, mode).status().code();
  }

  TempDir dir_;
  std::string file_ = dir_.path() + "/table.dat";
};

TEST_F(RangeLockTest, OverlappingRangesExcludeAcrossProcesses) {
  std::string line;
  auto child = Holder(100, 10, "exclusive", &line);  // [100, 110)
  ASSERT_EQ(line, "locked");
  EXPECT_EQ(Try(105, 10, kX), StatusCode::kLockHeld);
  EXPECT_EQ(Try(100, 10, kS), StatusCode::kLockHeld);
  EXPECT_EQ(Try(109, 1, kX), StatusCode::kLockHeld);
  EXPECT_EQ(Try(0, 0, kX), StatusCode::kLockHeld) << "length 0 covers to the end and beyond";
  EXPECT_EQ(Try(110, 5, kX), StatusCode::kOk) << "adjacent ranges do not conflict";
  EXPECT_EQ(Try(90, 10, kX), StatusCode::kOk);

  // A waiter gets the range when the other process unlocks it.
  Result<RangeLock> waited = InternalError("not run");
  std::thread waiter([&] { waited = RangeLock::Lock(file_, 100, 10, kX, 60s); });
  child->WriteLine("unlock");
  EXPECT_EQ(child->ReadLine(), "unlocked");
  waiter.join();
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_TRUE(waited->locked());
  // Now the other process is the one refused.
  auto refused = Holder(100, 1, "shared", &line);
  EXPECT_EQ(line, "held");
}

TEST_F(RangeLockTest, SharedRangesCoexistAndExcludeExclusive) {
  std::string line;
  auto child = Holder(0, 100, "shared", &line);
  ASSERT_EQ(line, "locked");
  auto mine = RangeLock::Lock(file_, 50, 10, kS);
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_EQ(Try(60, 1, kX), StatusCode::kLockHeld);
  auto other = Holder(55, 1, "exclusive", &line);
  EXPECT_EQ(line, "held");
}

TEST_F(RangeLockTest, ExcludesWithinOneProcessAndSurvivesClosingAnotherDescriptor) {
  auto a = RangeLock::Lock(file_, 0, 10, kX);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Try(5, 1, kX), StatusCode::kLockHeld) << "two RangeLocks of one thread conflict";
  // Classic POSIX locks would be dropped here: any close() of the file releases them all.
  const int other = open(file_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(other, 0);
  close(other);
  std::string line;
  auto child = Holder(0, 10, "exclusive", &line);
  EXPECT_EQ(line, "held");
  a->Unlock();
  EXPECT_FALSE(a->locked());
  auto after = Holder(0, 10, "exclusive", &line);
  EXPECT_EQ(line, "locked");
}

TEST_F(RangeLockTest, KilledHolderFreesItsRange) {
  std::string line;
  auto child = Holder(4096, 4096, "exclusive", &line);
  ASSERT_EQ(line, "locked");
  EXPECT_EQ(Try(4096, 1, kX), StatusCode::kLockHeld);
  child->Kill(SIGKILL);
  child->Wait();
  EXPECT_EQ(Try(4096, 4096, kX), StatusCode::kOk);
}

TEST_F(RangeLockTest, UnlocksOnDestructionAndMoves) {
  {
    auto a = RangeLock::Lock(file_, 10, 10, kX);
    ASSERT_TRUE(a.ok());
    RangeLock moved = std::move(*a);
    EXPECT_FALSE(a->locked());
    EXPECT_TRUE(moved.locked());
    EXPECT_EQ(moved.offset(), 10u);
    EXPECT_EQ(moved.length(), 10u);
    EXPECT_EQ(moved.mode(), kX);
    EXPECT_EQ(Try(15, 1, kX), StatusCode::kLockHeld);
    auto b = RangeLock::Lock(file_, 40, 1, kX);
    ASSERT_TRUE(b.ok());
    moved = std::move(*b);  // releases [10, 20)
    EXPECT_EQ(Try(15, 1, kX), StatusCode::kOk);
    EXPECT_EQ(Try(40, 1, kX), StatusCode::kLockHeld);
  }
  EXPECT_EQ(Try(40, 1, kX), StatusCode::kOk);
}

TEST_F(RangeLockTest, WaitElapsesWithLockHeld) {
  auto a = RangeLock::Lock(file_, 0, 1, kX);
  ASSERT_TRUE(a.ok());
  std::chrono::steady_clock::duration took{};
  StatusCode code = StatusCode::kOk;
  std::thread t([&] {  // another thread: the same thread would conflict the same way
    const auto t0 = std::chrono::steady_clock::now();
    code = RangeLock::Lock(file_, 0, 1, kX, 300ms).status().code();
    took = std::chrono::steady_clock::now() - t0;
  });
  t.join();
  EXPECT_EQ(code, StatusCode::kLockHeld);
  EXPECT_GE(took, 280ms);
}

TEST_F(RangeLockTest, DescriptorIsUsableAndCloseOnExec) {
  auto a = RangeLock::Lock(file_, 0, 8, kX);
  ASSERT_TRUE(a.ok());
  EXPECT_NE(fcntl(a->fd(), F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(pwrite(a->fd(), "record01", 8, 0), 8);
  char buf[8] = {};
  ASSERT_EQ(pread(a->fd(), buf, 8, 0), 8);
  EXPECT_EQ(std::string(buf, 8), "record01");
}

TEST_F(RangeLockTest, BadArgumentsAreInvalid) {
  EXPECT_EQ(RangeLock::Lock("", 0, 1, kX).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Try(std::uint64_t{1} << 63, 1, kX), StatusCode::kInvalidArgument);
  EXPECT_EQ(Try((std::uint64_t{1} << 63) - 1, 2, kX), StatusCode::kInvalidArgument);
  EXPECT_EQ(RangeLock::Lock(file_, 0, 1, kX, -1ms).status().code(),
            StatusCode::kInvalidArgument);
  auto missing = RangeLock::Lock(dir_.path() + "/no/such/dir/file", 0, 1, kX);
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("/no/such/dir/file"));
  EXPECT_EQ(RangeLock::Lock(dir_.path(), 0, 1, kX).status().code(),
            StatusCode::kInvalidArgument)
      << "a directory is not a lockable file";
}

}  // namespace
}  // namespace ordo::testing
