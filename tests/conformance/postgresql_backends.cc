// The PostgreSQL backend joins the conformance suite with each of its three strategies, against
// a throwaway cluster this test process starts (tools/harness/pg_cluster.h).
#include "conformance.h"
#include "pg_cluster.h"

namespace ordo::testing {
namespace {

// 1000 increments per strategy keep the multi-process counter test to seconds while every
// acquisition still goes through a durable commit.
INSTANTIATE_TEST_SUITE_P(
    Postgresql, ConformanceTest,
    ::testing::Values(
        BackendCase{"postgresql_cas", [] { return SharedPgCluster().Url("cas"); }, 1000},
        BackendCase{"postgresql_version", [] { return SharedPgCluster().Url("version"); }, 1000},
        BackendCase{"postgresql_for_update", [] { return SharedPgCluster().Url("for-update"); },
                    1000}),
    BackendCaseName);

}  // namespace
}  // namespace ordo::testing
