#include "ordo/duration.h"

#include <gtest/gtest.h>

namespace ordo {
namespace {

using namespace std::chrono_literals;

TEST(DurationTest, ParsesUnitsAndBareSeconds) {
  EXPECT_EQ(*ParseDuration("500ms"), 500ms);
  EXPECT_EQ(*ParseDuration("30s"), 30s);
  EXPECT_EQ(*ParseDuration("5m"), 5min);
  EXPECT_EQ(*ParseDuration("1h"), 1h);
  EXPECT_EQ(*ParseDuration("10"), 10s);
  EXPECT_EQ(*ParseDuration("1.5"), 1500ms);
  EXPECT_EQ(*ParseDuration("0.25s"), 250ms);
  EXPECT_EQ(*ParseDuration("0"), 0ms);
}

TEST(DurationTest, RefusesMalformed) {
  for (const char* bad : {"", "-1", "s", "10x", "1..2", "ms", "1e9", "99999999999h", " 1"}) {
    auto r = ParseDuration(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(DurationTest, FormatsShortestExactForm) {
  EXPECT_EQ(FormatDuration(250ms), "250ms");
  EXPECT_EQ(FormatDuration(30s), "30s");
  EXPECT_EQ(FormatDuration(5min), "5m");
  EXPECT_EQ(FormatDuration(2h), "2h");
  EXPECT_EQ(FormatDuration(1500ms), "1500ms");
}

}  // namespace
}  // namespace ordo
