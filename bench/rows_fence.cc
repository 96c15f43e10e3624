// Fencing inside the user's own database: a user transaction fenced by ordo_fence (installed
// by `ordo fence install`) against the same transaction without it. Both sides are pgbench on
// the same throwaway cluster in the same run, at 1 and 8 clients (each client its own row and
// resource), with durable commits; the rounds alternate so that drift hits both sides alike.
#include <algorithm>
#include <string>

#include "backends.h"
#include "temp_dir.h"

#if __has_include("statements.h") && __has_include("pg_cluster.h")
#define ORDO_BENCH_HAVE_FENCE 1
#include "pg_cluster.h"
#endif

namespace ordo::bench {

#ifdef ORDO_BENCH_HAVE_FENCE
namespace {

constexpr char kDatabase[] = "ordo_fence_bench";

// The transaction of the baseline; the fenced one is the same with ordo_fence first. One token
// per client, as a lock holder that runs many transactions under one lease.
constexpr char kUpdate[] = "UPDATE accounts SET balance = balance + 1 WHERE id = :client_id + 1;\n";
constexpr char kFence[] = "SELECT ordo_fence('accounts:' || :client_id, 7);\n";

Sample Pgbench(const std::string& script, int clients, int secs, std::string* printed) {
  return RunPgbenchIn(testing::SharedPgCluster().ConnInfo(kDatabase), script, clients, secs, 20,
                      printed);
}

// Creates the user's database and installs the fence with the real `ordo fence install`.
std::string Setup(const Config& cfg) {
  testing::PgCluster& pg = testing::SharedPgCluster();
  pg.CreateDatabase(kDatabase);
  pg.Psql("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);"
          "INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 64) g",
          kDatabase);
  if (cfg.ordo_binary.empty()) return "the ordo binary was not found";
  double wall = 0;
  const int status = RunCommand({cfg.ordo_binary, "fence", "install", "--database",
                                 pg.UrlFor(kDatabase, "")},
                                &wall);
  return status == 0 ? "" : "ordo fence install failed";
}

}  // namespace

void RunFenceRows(const Config& cfg, Table& table) {
  std::string error;
  try {
    error = Setup(cfg);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const int secs = cfg.smoke ? 0 : std::max(1, static_cast<int>(cfg.seconds + 0.5));
  const std::string plain = std::string("BEGIN;\n") + kUpdate + "COMMIT;\n";
  const std::string fenced = std::string("BEGIN;\n") + kFence + kUpdate + "COMMIT;\n";
  for (int clients : {1, 8}) {
    Row row{.backend = "your own PostgreSQL table",
            .scenario = "fenced transaction (ordo_fence + UPDATE)",
            .clients = clients,
            .kind = RowKind::kThroughput,
            .baseline_name = "pgbench, same transaction without ordo_fence"};
    if (!error.empty()) {
      row.ordo = row.baseline = Sample::Error(error);
      table.Add(std::move(row));
      continue;
    }
    std::vector<Sample> with, without;
    std::string printed_with, printed_without;
    for (int round = 0; round < 2; ++round) {
      without.push_back(Pgbench(plain, clients, secs, &printed_without));
      with.push_back(Pgbench(fenced, clients, secs, &printed_with));
    }
    row.ordo = Merge(with);
    row.baseline = Merge(without);
    row.detail = "fenced: " + printed_with + "\nbaseline: " + printed_without;
    table.Add(std::move(row));
  }
}

#else

void RunFenceRows(const Config&, Table& table) {
  for (int clients : {1, 8}) {
    table.Add(Row{.backend = "your own PostgreSQL table",
                  .scenario = "fenced transaction (ordo_fence + UPDATE)",
                  .clients = clients,
                  .ordo = Sample::NotAvailable("n/a (PostgreSQL tests not built)"),
                  .baseline_name = "pgbench, same transaction without ordo_fence",
                  .baseline = Sample::NotAvailable("n/a (PostgreSQL tests not built)")});
  }
}

#endif

}  // namespace ordo::bench
