// Fencing inside the user's own database: a user transaction fenced by ordo_fence (installed
// by `ordo fence install`) against the same transaction without it. Both sides are pgbench on
// the same throwaway cluster in the same run, at 1 and 8 clients (each client its own row and
// resource), with durable commits; the rounds alternate so that drift hits both sides alike.
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>

#include "backends.h"
#include "test_support.h"

#if __has_include("pg_cluster.h")
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

// pgbench -f script at `clients` clients for `secs` seconds (or -t 20 when secs is 0); tps.
Sample Pgbench(const std::string& script, int clients, int secs, std::string* printed) {
  const std::string pgbench = FindProgram("pgbench");
  if (pgbench.empty()) return Sample::Error("pgbench not installed");
  testing::TempDir dir;
  const std::string path = dir.path() + "/script.sql";
  std::ofstream(path) << script;
  const std::string out = dir.path() + "/out.txt";
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" >'" + out + "' 2>&1",
                                   pgbench, "-n", "-M", "prepared", "-f", path, "-c",
                                   std::to_string(clients), "-j", std::to_string(clients)};
  if (secs > 0) {
    argv.insert(argv.end(), {"-T", std::to_string(secs)});
  } else {
    argv.insert(argv.end(), {"-t", "20"});
  }
  argv.push_back(testing::SharedPgCluster().ConnInfo(kDatabase));
  double wall = 0;
  const int status = RunCommand(argv, &wall);
  std::string text;
  if (FILE* f = std::fopen(out.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) text.append(buf, n);
    std::fclose(f);
  }
  *printed = "pgbench -n -M prepared -c " + std::to_string(clients) + " -j " +
             std::to_string(clients) + " -T " + std::to_string(secs) + " -f script.sql\n\n" +
             script;
  std::smatch m;
  static const std::regex tps(R"(tps = ([0-9.]+) \(without initial connection time\))");
  if (status != 0 || !std::regex_search(text, m, tps)) {
    return Sample::Error("pgbench failed: " + text.substr(0, 300));
  }
  Sample s;
  s.ops_per_sec = std::stod(m[1]);
  s.elapsed = wall / 1e6;
  s.count = s.ops_per_sec * s.elapsed;
  return s;
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
