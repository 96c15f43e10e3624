// The etcd backend joins the conformance suite, against a throwaway single etcd member this
// test process starts (tools/harness/etcd_cluster.h).
#include "conformance.h"
#include "etcd_cluster.h"

namespace ordo::testing {
namespace {

// Each lock/unlock cycle is a lease grant, a transaction, a range, a delete and a revoke, each
// a Raft commit with fsync; 1,000 of them keep the multi-process counter test to seconds.
INSTANTIATE_TEST_SUITE_P(
    Etcd, ConformanceTest,
    ::testing::Values(BackendCase{"etcd", [] { return SharedEtcdCluster().Url(); }, 1000},
                      BackendCase{"etcd_prefixed",
                                  [] { return SharedEtcdCluster().Url("/tenant-a/ordo/"); }, 500}),
    BackendCaseName);

}  // namespace
}  // namespace ordo::testing
