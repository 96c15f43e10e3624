// postgresql:// (each strategy) against pgbench running the adapter's own statements
// (adapters/postgresql/statements.h) at the same client count on the same throwaway cluster,
// with durable commits; and the scale row.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <cstdio>
#include <random>
#include <regex>
#include <thread>

#include "backends.h"
#include "ordo/ordo.h"
#include "temp_dir.h"

#if __has_include("statements.h") && __has_include("pg_cluster.h")
#define ORDO_BENCH_HAVE_PG 1
#include <pqxx/pqxx>

#include "pg_cluster.h"
#include "statements.h"
#endif

namespace ordo::bench {
namespace {

// The scale row's labels; its figures are filled in below when PostgreSQL is built.
Row ScaleRow(const Config& cfg) {
  return Row{.backend = "scale: postgresql:// cas",
             .scenario = "acquire latency, " + std::to_string(cfg.scale_rows) + " lock rows vs 1,000",
             .clients = 1,
             .kind = RowKind::kLatency,
             .baseline_name = "the same acquire with 1,000 lock rows"};
}

}  // namespace

#ifdef ORDO_BENCH_HAVE_PG
namespace {

namespace sql = ordo::pg::sql;

// Replaces every "$N" of a statement by args[N-1] (longest numbers first: $10 before $1).
std::string Bind(std::string_view statement, const std::vector<std::string>& args) {
  std::string out(statement);
  for (std::size_t i = args.size(); i >= 1; --i) {
    const std::string param = "$" + std::to_string(i);
    for (auto at = out.find(param); at != std::string::npos; at = out.find(param, at)) {
      out.replace(at, param.size(), args[i - 1]);
      at += args[i - 1].size();
    }
  }
  return out;
}

// The one cluster of the run (tools/harness/pg_cluster.h): initdb + pg_ctl on a free loopback
// port, fsync and synchronous_commit on, stopped at exit (a watchdog stops it even if the bench
// is killed).
testing::PgCluster& Cluster() { return testing::SharedPgCluster(); }

// ordo and the baselines connect alike: TCP on loopback, the same user and password.
std::string ConnInfo() { return Cluster().ConnInfo(); }

// Runs pgbench with `script` at `clients` clients (-M prepared) and returns its tps. `secs` > 0
// runs -T secs, otherwise -t `transactions` per client. `conninfo`: the database to run in.
Sample RunPgbench(const std::string& script, int clients, int secs, long transactions,
                  const std::vector<std::string>& defines, std::string* printed,
                  const std::string& conninfo = ConnInfo()) {
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
    argv.insert(argv.end(), {"-t", std::to_string(std::max(1L, transactions))});
  }
  for (const auto& d : defines) argv.insert(argv.end(), {"-D", d});
  argv.push_back(conninfo);  // pgbench takes a conninfo string where the dbname goes
  double wall = 0;
  const int status = RunCommand(argv, &wall);
  std::string text;
  if (FILE* f = std::fopen(out.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  *printed = "pgbench -n -M prepared -c " + std::to_string(clients) + " -j " +
             std::to_string(clients) + (secs > 0 ? " -T " + std::to_string(secs) : " -t N") +
             " -f script.sql" + (defines.empty() ? "" : " -D " + defines[0]) + "\n\n" + script;
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

// pgbench scripts: the adapter's statements with $N bound to pgbench variables.
const std::string kName = "('pgb-' || :client_id)";
const std::string kOwner = "'pgbench'";
const std::string kValue = "'\\x" + std::string(128, '7') + "'";

// A number a previous statement returned through \gset; pgbench stores SQL NULL (a refused
// acquire) as "", which must not abort the client: it becomes 0 (matches no row).
std::string Num(const std::string& var) { return "coalesce(nullif(:" + var + ", '')::bigint, 0)"; }

class PostgresBench final : public BackendBench {
 public:
  explicit PostgresBench(std::string strategy) : strategy_(std::move(strategy)) {}
  std::string label() const override { return "postgresql:// " + strategy_; }
  std::string scheme() const override { return "postgresql"; }
  std::string url() const override { return url_; }
  std::chrono::microseconds block_delay() const override { return std::chrono::microseconds(5000); }

  std::string Setup(const Config&) override {
    try {
      // ORDO_BENCH_PG_QUERY (e.g. "&prepare=off") compares URL options in one binary.
      const char* extra = std::getenv("ORDO_BENCH_PG_QUERY");
      url_ = Cluster().Url(strategy_) + (extra != nullptr ? extra : "");
    } catch (const std::exception& e) {
      return std::string("PostgreSQL cluster: ") + e.what();
    }
    return "";
  }

  void SawOrdo(Scenario, int clients, const Sample& s) override {
    last_ordo_rate_ = s.ops_per_sec > 0 ? s.ops_per_sec / clients : 100;
  }

  Baseline Measure(const Config& cfg, Scenario scenario, int clients) override {
    if (scenario == Scenario::kWake) return MeasureWakeRaw(cfg);
    const std::string script = Script(scenario, clients);
    const int secs = cfg.quick || cfg.smoke ? 0 : static_cast<int>(cfg.seconds + 0.5);
    const long transactions = static_cast<long>(last_ordo_rate_ * (cfg.smoke ? 0.05 : cfg.seconds));
    std::string printed;
    if (scenario != Scenario::kContended) {
      std::vector<std::string> defines;
      if (scenario == Scenario::kCas) defines.push_back("obj_version=0");
      return {"pgbench, same SQL",
              RunPgbench(script, clients, secs, transactions, defines, &printed), printed};
    }
    // Contended: pgbench counts attempts; successful pairs are the tokens issued meanwhile.
    try {
      pqxx::connection c(ConnInfo());
      pqxx::nontransaction tx(c);
      const std::string name = "pgb-contended";
      auto last = [&] {
        auto r = tx.exec("SELECT coalesce(max(last_token), 0) FROM ordo.locks WHERE name = " +
                         tx.quote(name));
        return r[0][0].as<long>();
      };
      const long before = last();
      const double start = NowSeconds();
      Sample s = RunPgbench(script, clients, secs, transactions, {}, &printed);
      const double elapsed = NowSeconds() - start;
      if (!s.ok()) return {"pgbench, same SQL", s, printed};
      s.ops_per_sec = static_cast<double>(last() - before) / elapsed;
      s.count = static_cast<double>(last() - before);
      s.elapsed = elapsed;
      return {"pgbench, same SQL (successful pairs)", s, printed};
    } catch (const std::exception& e) {
      return {"pgbench", Sample::Error(e.what()), ""};
    }
  }

 private:
  std::string Script(Scenario scenario, int clients) {
    const std::string name = scenario == Scenario::kContended ? "'pgb-contended'" : kName;
    (void)clients;
    switch (scenario) {
      case Scenario::kFenced:
        return Bind(sql::kFencedWrite, {"('pgb-f-' || :client_id)", kValue, "7", "''"}) + ";\n";
      case Scenario::kCas:
        // -D obj_version=0: the first transaction creates, each later one updates; every
        // client has its own key, so each CAS moves the version by exactly one.
        return Bind(sql::kObjectCas, {"('pgb-o-" + strategy_ + "-" + std::to_string(++cas_runs_) +
                                          "-' || :client_id)",
                                      kValue, ":obj_version"}) +
               ";\n\\set obj_version :obj_version + 1\n";
      default:
        break;
    }
    if (strategy_ == "cas") {
      return Bind(sql::kCasAcquire, {name, kOwner, "'exclusive'", "30000", "1"}) + " \\gset acq_\n" +
             Bind(sql::kCasRelease, {name, Num("acq_token")}) + ";\n";
    }
    if (strategy_ == "version") {
      // \aset: the read returns one row per holder row (a refused attempt may leave one);
      // every row carries the same lock version.
      return Bind(sql::kVersionRead, {name}) + " \\aset rd_\n" +
             // \aset: a refused write-back returns no row and leaves acq_token at 0.
             "\\set acq_token 0\n" +
             Bind(sql::kVersionAcquire,
                  {name, kOwner, "'exclusive'", "30000", Num("rd_version"), "'{}'", "0", "1"}) +
             " \\aset acq_\n" + Bind(sql::kVersionRead, {name}) + " \\aset rd_\n" +
             Bind(sql::kVersionRelease, {name, Num("acq_token"), Num("rd_version")}) + ";\n";
    }
    // for-update: the token is issued in a transaction of its own (the adapter does that on a
    // second connection, after taking the row lock; pgbench has one connection per client, so
    // here it comes first), then the row lock is taken and released in the holder transaction.
    // Issued before the lock, contended clients' token statements race and some defer on the
    // lock-table rule (statements.h), which the adapter, issuing under the row lock, never
    // meets: the contended baseline's token count undercounts its pairs.
    // The lock timeouts are set only when the acquire waits, as the adapter does.
    return Bind(sql::kForUpdateIssueToken,
                {name, kOwner, "'exclusive'", "30000", "txid_current()", "0", "1"}) +
           " \\gset ft_\nBEGIN;\n" +
           (scenario == Scenario::kContended
                ? Bind(sql::kForUpdateTimeouts, {"'30000'", "'60000'"}) + ";\n" +
                      Bind(sql::kForUpdateLockExclusive, {name})
                : Bind(sql::kForUpdateLockExclusiveNowait, {name})) +
           ";\n" + Bind(sql::kForUpdateRelease, {name, Num("ft_token")}) + ";\nCOMMIT;\n";
  }

  // The raw wake-up: the holder's release statement commits with its NOTIFY; a waiter blocked
  // in LISTEN wakes and runs the acquire statement. Same SQL, same channel, libpqxx directly.
  Baseline MeasureWakeRaw(const Config& cfg) {
    const std::string name = "pgb-wake-" + strategy_;
    const std::string channel(sql::kChannel);
    try {
      pqxx::connection holder(ConnInfo());
      pqxx::connection waiter(ConnInfo());
      struct Receiver final : pqxx::notification_receiver {
        Receiver(pqxx::connection_base& c, const std::string& ch) : notification_receiver(c, ch) {}
        void operator()(const std::string&, int) override {}
      } receiver(waiter, channel);
      // Releases NOTIFY only names a waiter registered (statements.h): the raw waiter
      // registers once, as ordo's listener does.
      pqxx::nontransaction(waiter).exec_params(std::string(sql::kRegisterWaiter),
                                               sql::kWaitersClass, name);
      holder.prepare("acquire", std::string(sql::kCasAcquire));
      holder.prepare("release", std::string(sql::kCasRelease));
      waiter.prepare("acquire", std::string(sql::kCasAcquire));
      waiter.prepare("release", std::string(sql::kCasRelease));
      long held = 0;
      long waited = 0;
      auto acquire = [&](pqxx::connection& c, long* token) {
        pqxx::nontransaction tx(c);
        auto r = tx.exec_prepared("acquire", name, "raw", "exclusive", 30000, 1);  // limit 1
        if (r[0][0].is_null()) return false;
        *token = r[0][0].as<long>();
        return true;
      };
      auto release = [&](pqxx::connection& c, long token) {
        pqxx::nontransaction tx(c);
        tx.exec_prepared("release", name, token);
      };
      WakeOps ops{[&](std::string*) { return acquire(holder, &held); },
                  [&](std::string*) {
                    while (!acquire(waiter, &waited)) waiter.await_notification(5, 0);
                    return true;
                  },
                  [&](std::string*) {
                    release(waiter, waited);
                    return true;
                  },
                  [&](std::string*) {
                    release(holder, held);
                    return true;
                  }};
      Sample s = MeasureWake(cfg, ops, block_delay());
      return {"raw: release commits NOTIFY → LISTENer runs acquire (libpqxx)", s,
              "waiter: LISTEN " + channel + "; register (waiters key); acquire (cas.acquire); "
              "on a refusal wait for a notification and retry\nholder: cas.release (DELETE … "
              "pg_notify when a waiter is registered) — see cas "
              "statements above"};
    } catch (const std::exception& e) {
      return {"raw LISTEN/NOTIFY", Sample::Error(e.what()), ""};
    }
  }

  std::string strategy_;
  std::string url_;
  double last_ordo_rate_ = 100;
  int cas_runs_ = 0;  // a fresh key per pgbench run: each starts from version 0
};

}  // namespace

Sample RunPgbenchIn(const std::string& conninfo, const std::string& script, int clients,
                    int secs, long transactions, std::string* printed) {
  return RunPgbench(script, clients, secs, transactions, {}, printed, conninfo);
}

std::vector<std::unique_ptr<BackendBench>> PostgresBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  for (const char* s : {"for-update", "cas", "version"}) out.push_back(std::make_unique<PostgresBench>(s));
  return out;
}

// A database of its own holding `rows` lock rows, flushed (CHECKPOINT) so that the bulk load's
// writes do not compete with the measured commits.
Result<std::unique_ptr<Locker>> ScaleDatabase(const std::string& db, int rows) {
  Cluster().CreateDatabase(db);
  // Opening migrates the schema.
  auto locker = Open(Cluster().UrlFor(db, "strategy=cas"));
  if (!locker.ok()) return locker.status();
  pqxx::connection c(Cluster().ConnInfo(db));
  {
    pqxx::work tx(c);
    tx.exec("INSERT INTO ordo.locks (name, last_token, version) SELECT 'scale-' || g, 1, 0 "
            "FROM generate_series(1, " + std::to_string(rows) + ") g");
    tx.commit();
  }
  pqxx::nontransaction(c).exec("VACUUM ANALYZE ordo.locks");
  pqxx::nontransaction(c).exec("CHECKPOINT");
  return locker;
}

// Acquire latency with 1,000 vs `cfg.scale_rows` lock rows. Samples alternate between the two
// databases (same cluster, same disk) so that a slow moment of the disk hits both alike. Each
// sample acquires a random existing name (timed) and releases it (untimed).
void ScaleSamples(const Config& cfg, Sample* small, Sample* large) {
  try {
    static int run = 0;
    const std::string suffix = std::to_string(getpid()) + "_" + std::to_string(++run);
    auto a = ScaleDatabase("scale_small_" + suffix, 1000);
    auto b = ScaleDatabase("scale_large_" + suffix, cfg.scale_rows);
    if (!a.ok() || !b.ok()) {
      *small = *large = Sample::Error((a.ok() ? b : a).status().message());
      return;
    }
    std::mt19937 rng(42);
    const int samples = cfg.smoke ? 5 : cfg.quick ? 60 : 400;
    std::vector<double> us[2];
    std::string error;
    for (int i = 0; i < samples + samples / 10 && error.empty(); ++i) {
      for (int side = 0; side < 2; ++side) {
        Locker& locker = side == 0 ? **a : **b;
        const int rows = side == 0 ? 1000 : cfg.scale_rows;
        const std::string name =
            "scale-" + std::to_string(std::uniform_int_distribution<int>(1, rows)(rng));
        const double start = NowSeconds();
        auto lease = locker.Acquire({.name = name});
        const double took = (NowSeconds() - start) * 1e6;
        if (!lease.ok()) {
          error = lease.status().message();
          break;
        }
        locker.Release(*lease).IgnoreError();
        if (i >= samples / 10) us[side].push_back(took);  // the first tenth warms up
      }
    }
    if (!error.empty()) {
      *small = *large = Sample::Error(error);
      return;
    }
    Percentiles(us[0], small);
    Percentiles(us[1], large);
  } catch (const std::exception& e) {
    *small = *large = Sample::Error(e.what());
  }
}

void RunScaleRow(const Config& cfg, Table& table) {
  std::fprintf(stderr, "scale\n");
  Row row = ScaleRow(cfg);
  if (!SchemeRegistered("postgresql")) {
    row.ordo = Sample::NotAvailable("n/a (backend not built)");
    row.baseline = Sample::NotAvailable("—");
  } else {
    ScaleSamples(cfg, &row.baseline, &row.ordo);
    row.detail = "two databases, one with 1,000 and one with N lock rows:\n"
                 "INSERT INTO ordo.locks (name, last_token, version) SELECT 'scale-' || g, 1, 0 "
                 "FROM generate_series(1, N) g; VACUUM ANALYZE ordo.locks; CHECKPOINT;\nthen, "
                 "alternating between them: Acquire(a random existing name) timed, Release untimed";
  }
  table.Add(std::move(row));
}

#else  // the PostgreSQL adapter or the test cluster is not merged yet

namespace {

class PostgresBench final : public BackendBench {
 public:
  explicit PostgresBench(std::string strategy) : strategy_(std::move(strategy)) {}
  std::string label() const override { return "postgresql:// " + strategy_; }
  std::string scheme() const override { return "postgresql"; }
  std::string url() const override { return ""; }
  std::string NotAvailable(const Config&) const override { return "n/a (backend not built)"; }
  std::string Setup(const Config&) override { return "n/a"; }
  Baseline Measure(const Config&, Scenario, int) override { return {}; }

 private:
  std::string strategy_;
};

}  // namespace

std::vector<std::unique_ptr<BackendBench>> PostgresBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  for (const char* s : {"for-update", "cas", "version"}) out.push_back(std::make_unique<PostgresBench>(s));
  return out;
}

void RunScaleRow(const Config& cfg, Table& table) {
  Row row = ScaleRow(cfg);
  row.ordo = Sample::NotAvailable("n/a (backend not built)");
  row.baseline = Sample::NotAvailable("—");
  table.Add(std::move(row));
}

#endif

}  // namespace ordo::bench
