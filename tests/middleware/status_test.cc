#include "ordo/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace ordo {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(StatusTest, CodesHaveWireNames) {
  EXPECT_EQ(StatusCodeName(StatusCode::kLockHeld), "lock_held");
  EXPECT_EQ(StatusCodeName(StatusCode::kLeaseLost), "lease_lost");
  EXPECT_EQ(StatusCodeName(StatusCode::kStaleToken), "stale_token");
  EXPECT_EQ(StatusCodeName(StatusCode::kVersionMismatch), "version_mismatch");
  EXPECT_EQ(StatusCodeName(StatusCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnavailable), "unavailable");
  EXPECT_EQ(StatusCodeName(StatusCode::kNotFound), "not_found");
  EXPECT_EQ(StatusCodeName(StatusCode::kInternal), "internal");
}

TEST(StatusTest, ErrorsCarryMessageAndCurrent) {
  Status s = StaleTokenError("token 3 < 5", 5);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kStaleToken);
  EXPECT_EQ(s.message(), "token 3 < 5");
  EXPECT_EQ(s.current(), 5u);
  EXPECT_EQ(s.ToString(), "stale_token: token 3 < 5");
  EXPECT_FALSE(LockHeldError("x").current().has_value());
}

TEST(ResultTest, HoldsValueOrStatus) {
  Result<std::string> good = std::string("v");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, "v");
  EXPECT_EQ(good->size(), 1u);
  Result<std::string> bad = NotFoundError("nope");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(bad.value_or("fallback"), "fallback");
}

TEST(ResultTest, MovesOutMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  std::unique_ptr<int> taken = std::move(*r);
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(*taken, 7);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> bad = InternalError("boom");
  EXPECT_DEATH((void)bad.value(), "boom");
}

TEST(ResultDeathTest, OkStatusIsNotAValue) {
  EXPECT_DEATH({ Result<int> r = OkStatus(); (void)r; }, "OK Status");
}

}  // namespace
}  // namespace ordo
