// `ordo run -- true` against `flock -n FILE true` and `etcdctl lock NAME true`: the whole
// cost of a cron wrapper, process start included. Runs alternate so drift hits both sides.
#include <cstdio>
#include <numeric>

#include "backends.h"
#include "temp_dir.h"
#include "subprocess.h"

namespace ordo::bench {
namespace {

struct WallTimes {
  std::vector<double> us;
  int failures = 0;
  int last_status = 0;

  Sample ToSample() const {
    if (us.empty() || failures > 0) {
      return Sample::Error(std::to_string(failures) + " runs failed (last exit status " +
                           std::to_string(last_status) + ")");
    }
    Sample s;
    std::vector<double> sorted = us;
    Percentiles(sorted, &s);
    s.p50_us = std::accumulate(us.begin(), us.end(), 0.0) / static_cast<double>(us.size());
    return s;
  }
  void Run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
    double wall = 0;
    const int status = RunCommand(argv, &wall, env);
    if (status != 0) {
      ++failures;
      last_status = status;
      return;
    }
    us.push_back(wall);
  }
};

// etcd on loopback ports in a temp dir; stopped by the destructor.
class Etcd {
 public:
  Etcd() {
    const std::string etcd = FindProgram("etcd");
    if (etcd.empty() || FindProgram("etcdctl").empty()) {
      error_ = "etcd not installed";
      return;
    }
    client_port_ = testing::FreeLoopbackPort();
    const int peer = testing::FreeLoopbackPort();
    const std::string c = "http://127.0.0.1:" + std::to_string(client_port_);
    const std::string p = "http://127.0.0.1:" + std::to_string(peer);
    server_ = std::make_unique<Server>(std::vector<std::string>{
        "/bin/sh", "-c", "exec \"$0\" \"$@\" >'" + dir_.path() + "/etcd.log' 2>&1", etcd, "--name", "bench",
        "--data-dir", dir_.path() + "/data", "--listen-client-urls", c,
        "--advertise-client-urls", c, "--listen-peer-urls", p, "--initial-advertise-peer-urls",
        p, "--initial-cluster", "bench=" + p});
    if (!WaitForPort(client_port_, std::chrono::seconds(15))) error_ = "etcd did not start";
  }
  const std::string& error() const { return error_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }

 private:
  testing::TempDir dir_;
  int client_port_ = 0;
  std::unique_ptr<Server> server_;
  std::string error_;
};

}  // namespace

void RunCliRows(const Config& cfg, Table& table) {
  std::fprintf(stderr, "ordo run\n");
  Row flock_row{.backend = "ordo run -- true (flock://)",
                .scenario = "wall time of one run, " + std::to_string(cfg.spawn_runs) + " runs",
                .clients = 1,
                .kind = RowKind::kWallTime,
                .baseline_name = "flock -n FILE true"};
  Row etcd_row = flock_row;
  etcd_row.baseline_name = "etcdctl lock NAME true";
  const std::string truth = FindProgram("true");
  const std::string flock = FindProgram("flock");
  if (cfg.ordo_binary.empty()) {
    flock_row.ordo = etcd_row.ordo = Sample::NotAvailable("n/a (backend not built)");
    flock_row.baseline = etcd_row.baseline = Sample::NotAvailable("—");
    table.Add(std::move(flock_row));
    table.Add(std::move(etcd_row));
    return;
  }
  testing::TempDir dir;
  const std::string lock_file = dir.path() + "/flock-baseline.lock";
  const std::vector<std::string> ordo_argv = {cfg.ordo_binary, "run", "--backend",
                                              "flock://" + dir.path(), "--lock",
                                              BenchName("cron"), "--", truth};
  WallTimes ordo_times;
  WallTimes flock_times;
  for (int i = 0; i < cfg.spawn_runs; ++i) {
    ordo_times.Run(ordo_argv);
    if (!flock.empty()) flock_times.Run({flock, "-n", lock_file, truth});
  }
  flock_row.ordo = ordo_times.ToSample();
  flock_row.baseline = flock.empty() ? Sample::NotAvailable("flock(1) not installed")
                                     : flock_times.ToSample();
  flock_row.detail = "ordo: " + cfg.ordo_binary + " run --backend flock://DIR --lock NAME -- " +
                     truth + "\nbaseline: " + flock + " -n FILE " + truth;
  table.Add(std::move(flock_row));

  Etcd etcd;
  etcd_row.ordo = ordo_times.ToSample();
  if (!etcd.error().empty()) {
    etcd_row.baseline = Sample::NotAvailable(etcd.error());
  } else {
    WallTimes etcd_times;
    const std::string etcdctl = FindProgram("etcdctl");
    for (int i = 0; i < cfg.spawn_runs; ++i) {
      etcd_times.Run({etcdctl, "--endpoints=" + etcd.endpoint(), "lock", BenchName("cron"), truth},
                     {"ETCDCTL_API=3"});
    }
    etcd_row.baseline = etcd_times.ToSample();
    etcd_row.detail = "ETCDCTL_API=3 " + etcdctl + " --endpoints=" + etcd.endpoint() +
                      " lock NAME " + truth + "   (etcd on loopback, data dir in a temp dir)";
  }
  table.Add(std::move(etcd_row));
}

}  // namespace ordo::bench
