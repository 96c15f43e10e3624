#include "ordo/memory_store.h"

#include <gtest/gtest.h>

namespace ordo {
namespace {

TEST(MemoryFencedStoreTest, StrictModeWithoutLockTableIsInvalid) {
  MemoryFencedStore store;
  auto w = store.Write("k", "v", 3, "lock");
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Read("k").status().code(), StatusCode::kNotFound)
      << "a refused strict write must store nothing";
}

TEST(MemoryFencedStoreTest, StrictModeAsksTheHolderCheck) {
  std::uint64_t live = 8;
  MemoryFencedStore store([&](std::string_view lock, std::uint64_t token) {
    EXPECT_EQ(lock, "job");
    return token == live ? OkStatus() : StaleTokenError("not live", 0);
  });
  ASSERT_TRUE(store.Write("k", "a", 8, "job").ok());
  live = 9;
  auto refused = store.Write("k", "b", 8, "job");
  EXPECT_EQ(refused.status().code(), StatusCode::kStaleToken);
  EXPECT_EQ(refused.status().current(), 8u) << "current() reports the key's fence";
  ASSERT_TRUE(store.Write("k", "c", 9, "job").ok());
  EXPECT_EQ(store.Read("k")->data, "c");
}

}  // namespace
}  // namespace ordo
