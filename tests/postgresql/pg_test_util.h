// Assertions shared by the PostgreSQL test binaries.
#ifndef ORDO_TESTS_POSTGRESQL_PG_TEST_UTIL_H_
#define ORDO_TESTS_POSTGRESQL_PG_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>

#include "ordo/ordo.h"

namespace ordo::testing {

// A for-update holder whose transaction died with the server (a crash, a failover): Renew and
// Release report kLeaseLost, and the lock can be taken again, with a larger token.
inline void ExpectForUpdateHolderLost(Locker& fu, const Lease& held) {
  EXPECT_EQ(fu.Renew(held, std::chrono::seconds(10)).status().code(), StatusCode::kLeaseLost);
  EXPECT_EQ(fu.Release(held).code(), StatusCode::kLeaseLost);
  auto again = fu.Acquire({.name = held.name, .mode = LockMode::kExclusive,
                           .ttl = std::chrono::seconds(30)});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_GT(again->token, held.token);
  ASSERT_TRUE(fu.Release(*again).ok());
}

}  // namespace ordo::testing

#endif  // ORDO_TESTS_POSTGRESQL_PG_TEST_UTIL_H_
