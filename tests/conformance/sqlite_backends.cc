// The sqlite:// backend joins the conformance suite, once per strategy, each test on a fresh
// database file (so every test also exercises creation and migration of a new database).
#include "conformance.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

BackendCase SqliteCase(const std::string& strategy) {
  return BackendCase{
      "sqlite_" + strategy,
      [strategy] {
        return "sqlite://" + ProcessTempDir() + "/" + UniqueName("conformance") +
               ".db?strategy=" + strategy;
      },
      // Each lock/unlock cycle is two fsync'ed commits (synchronous=FULL), ~7 ms on this disk.
      /*process_increments=*/1000};
}

INSTANTIATE_TEST_SUITE_P(Sqlite, ConformanceTest,
                         ::testing::Values(SqliteCase("cas"), SqliteCase("version")),
                         BackendCaseName);

}  // namespace
}  // namespace ordo::testing
