#include "pg_cluster.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>

#include "temp_dir.h"
#include "subprocess.h"

namespace ordo::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUser = "ordo";
constexpr const char* kDatabase = "ordo_test";

// The highest-versioned /usr/lib/postgresql/<N>/bin that has initdb, or $ORDO_PG_BINDIR.
std::string FindBinDir() {
  if (const char* env = std::getenv("ORDO_PG_BINDIR"); env != nullptr && *env != '\0') {
    if (access((std::string(env) + "/initdb").c_str(), X_OK) == 0) return env;
    throw std::runtime_error(std::string("ORDO_PG_BINDIR=") + env + " has no executable initdb");
  }
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = entry.path().string() + "/bin";
    if (access((bin + "/initdb").c_str(), X_OK) != 0 || access((bin + "/pg_ctl").c_str(), X_OK) != 0) {
      continue;
    }
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version) {
      best_version = version;
      best = bin;
    }
  }
  if (best.empty()) {
    throw std::runtime_error(
        "PostgreSQL server binaries not found: no /usr/lib/postgresql/*/bin/initdb. The "
        "PostgreSQL tests need a real server; install the Debian package 'postgresql' (./dev "
        "does) or set ORDO_PG_BINDIR");
  }
  return best;
}

std::string RandomPassword() {
  static const char kChars[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd;
  std::string out = "pw-";
  for (int i = 0; i < 20; ++i) out.push_back(kChars[rd() % (sizeof(kChars) - 1)]);
  return out;
}

}  // namespace

void PgCluster::Prepare() {
  bin_dir_ = FindBinDir();
  if (geteuid() == 0) {
    // initdb and postgres refuse to run as root.
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      throw std::runtime_error(
          "running as root, but there is no 'postgres' system user to run the PostgreSQL "
          "server as; install the Debian package 'postgresql'");
    }
    as_postgres_ = true;
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  }
  // /tmp, not $TMPDIR: the postgres user must be able to reach it when we are root.
  std::string tmpl = as_postgres_ ? "/tmp/ordo-pg-XXXXXX"
                                  : (std::getenv("TMPDIR") != nullptr && *std::getenv("TMPDIR")
                                         ? std::string(std::getenv("TMPDIR"))
                                         : std::string("/tmp")) +
                                        "/ordo-pg-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp for the PostgreSQL cluster: ") +
                             std::strerror(errno));
  }
  dir_ = tmpl;
  data_dir_ = dir_ + "/data";
  if (as_postgres_ && chown(dir_.c_str(), uid_, gid_) != 0) {
    Fail(std::string("chown to postgres: ") + std::strerror(errno));
  }
  const std::string run_as = as_postgres_ ? "runuser -u postgres -- " : "";
  try {
    watchdog_.Start(run_as + ShellQuote(bin_dir_ + "/pg_ctl") + " -D " + ShellQuote(data_dir_) +
                    " stop -m immediate -w >/dev/null 2>&1; rm -rf " + ShellQuote(dir_));
  } catch (const std::runtime_error& e) {
    Fail(e.what());
  }
}

PgCluster::PgCluster() : owner_pid_(getpid()) {
  Prepare();
  password_ = RandomPassword();
  const std::string pwfile = dir_ + "/pwfile";
  {
    std::ofstream out(pwfile);
    out << password_ << "\n";
  }
  if (as_postgres_ && chown(pwfile.c_str(), uid_, gid_) != 0) Fail("chown pwfile");
  // --no-sync only skips flushing initdb's own files; the server itself runs with fsync on.
  if (RunPg({bin_dir_ + "/initdb", "-D", data_dir_, "-U", kUser, "--pwfile=" + pwfile,
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
             "--no-sync"}) != 0) {
    Fail("initdb failed");
  }
  {
    std::ofstream conf(data_dir_ + "/postgresql.conf", std::ios::app);
    conf << "\n# ordo tests\n"
         << "listen_addresses = '127.0.0.1'\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "fsync = on\n"
         << "synchronous_commit = on\n"
         << "shared_buffers = 16MB\n"
         << "max_connections = 300\n"
         << "logging_collector = off\n";
  }
  StartOnFreePort();
  CreateDatabase(kDatabase);
}

PgCluster::~PgCluster() {
  if (getpid() != owner_pid_) return;  // a forked child: the cluster is its parent's
  if (running_) StopFast();
  if (watchdog_.started()) {
    watchdog_.Finish();  // stops whatever is left and removes dir_
  } else if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

int PgCluster::RunPg(const std::vector<std::string>& argv, std::string* output) {
  const std::string log = dir_ + "/commands.log";
  const std::string out_file = dir_ + "/last-output";
  const int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (out >= 0 && as_postgres_ && fchown(out, uid_, gid_) != 0) {
    close(out);
    throw std::runtime_error("fchown " + out_file + ": " + std::strerror(errno));
  }
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  SpawnOptions options{.stdin_fd = devnull, .stdout_fd = out, .stderr_fd = out,
                       .directory = dir_};
  if (as_postgres_) {
    options.uid = uid_;
    options.gid = gid_;
  }
  const pid_t pid = Spawn(argv, options);
  if (out >= 0) close(out);
  if (devnull >= 0) close(devnull);
  if (pid < 0) throw std::runtime_error("fork failed");
  const int status = WaitForExit(pid);
  const std::string text = ReadFile(out_file);
  if (output != nullptr) *output = text;
  std::ofstream(log, std::ios::app) << "$ " << argv[0] << " … (status " << status << ")\n"
                                    << text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void PgCluster::Fail(const std::string& what) {
  throw std::runtime_error("PostgreSQL test cluster in " + dir_ + ": " + what +
                           "\n--- commands ---\n" + Tail(ReadFile(dir_ + "/commands.log")) +
                           "\n--- server log ---\n" + Tail(ReadFile(dir_ + "/server.log")));
}

void PgCluster::Start() {
  if (running_) return;
  if (RunPg({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-l", dir_ + "/server.log", "-w", "-t", "60",
             "-o", "-p " + std::to_string(port_), "start"}) != 0) {
    Fail("pg_ctl start on port " + std::to_string(port_) + " failed");
  }
  running_ = true;
}

void PgCluster::StartOnFreePort() {
  // The port was free a moment ago; another process may take it first, so try a few.
  for (int attempt = 0;; ++attempt) {
    port_ = FreeLoopbackPort();
    try {
      Start();
      return;
    } catch (const std::runtime_error&) {
      if (attempt >= 4) throw;
    }
  }
}

void PgCluster::StopImmediate() {
  if (!running_) return;
  if (RunPg({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-w", "stop", "-m", "immediate"}) != 0) {
    Fail("pg_ctl stop -m immediate failed");
  }
  running_ = false;
}

void PgCluster::StopFast() {
  RunPg({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-w", "stop", "-m", "fast"});
  running_ = false;
}

void PgCluster::Restart() {
  StopImmediate();
  Start();
}

std::unique_ptr<PgCluster> PgCluster::StandbyOf(PgCluster& primary, const std::string& name) {
  return std::unique_ptr<PgCluster>(new PgCluster(StandbyTag{}, primary, name));
}

PgCluster::PgCluster(StandbyTag, PgCluster& primary, const std::string& name)
    : owner_pid_(getpid()) {
  Prepare();
  password_ = primary.password_;
  // Over the primary's unix socket, which trusts local connections (replication included).
  const std::string conninfo = "host=" + primary.dir_ + " port=" +
                               std::to_string(primary.port_) + " user=" + kUser +
                               " application_name=" + name;
  if (RunPg({bin_dir_ + "/pg_basebackup", "-d", conninfo, "-D", data_dir_, "-R", "-X",
             "stream", "-c", "fast", "--no-sync"}) != 0) {
    Fail("pg_basebackup from port " + std::to_string(primary.port_) + " failed");
  }
  {
    // Later settings win: a socket directory of its own, and (in postgresql.auto.conf, which
    // is read last and where -R wrote its own) the walreceiver's name, which
    // synchronous_standby_names refers to.
    std::ofstream conf(data_dir_ + "/postgresql.conf", std::ios::app);
    conf << "\n# ordo tests: standby\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "hot_standby = on\n";
    std::ofstream auto_conf(data_dir_ + "/postgresql.auto.conf", std::ios::app);
    auto_conf << "primary_conninfo = '" << conninfo << "'\n";
  }
  StartOnFreePort();
}

void PgCluster::MakeSynchronous(const std::string& standby_name) {
  Psql("ALTER SYSTEM SET synchronous_standby_names = '" + standby_name + "'");
  Psql("SELECT pg_reload_conf()");
  for (int i = 0; i < 300; ++i) {
    if (Psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = '" +
             standby_name + "' AND sync_state = 'sync'") == "1") {
      return;
    }
    usleep(100'000);  // a bounded poll of the server's own replication state
  }
  Fail("standby '" + standby_name + "' did not become synchronous within 30 s");
}

void PgCluster::Promote() {
  if (RunPg({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-w", "-t", "60", "promote"}) != 0) {
    Fail("pg_ctl promote failed");
  }
}

void PgCluster::CreateDatabase(const std::string& name) {
  if (RunPg({bin_dir_ + "/createdb", "-h", dir_, "-p", std::to_string(port_), "-U", kUser,
             name}) != 0) {
    Fail("createdb " + name + " failed");
  }
}

std::string PgCluster::Psql(const std::string& sql, std::string_view database) {
  std::string out;
  if (RunPg({bin_dir_ + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", dir_,
             "-p", std::to_string(port_), "-U", kUser, "-d", std::string(database), "-c", sql},
            &out) != 0) {
    Fail("psql -c '" + sql + "' failed: " + out);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string PgCluster::Url(std::string_view strategy) const {
  // A generous connect timeout: sanitizer builds on a loaded 2-core CI machine can take seconds
  // to get a backend forked, and a slow connect is not what these tests are about.
  return UrlFor(kDatabase, "strategy=" + std::string(strategy) + "&connect_timeout=30");
}

std::string PgCluster::UrlFor(std::string_view database, std::string_view query) const {
  std::string url = std::string("postgresql://") + kUser + ":" + password_ + "@127.0.0.1:" +
                    std::to_string(port_) + "/" + std::string(database);
  if (!query.empty()) url += "?" + std::string(query);
  return url;
}

std::string PgCluster::ConnInfo(std::string_view database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + kUser +
         " password=" + password_ + " dbname=" + std::string(database);
}

PgCluster& SharedPgCluster() {
  static std::mutex mu;
  static std::unique_ptr<PgCluster> cluster;  // destroyed at exit: stops the server
  std::lock_guard<std::mutex> lock(mu);
  if (cluster == nullptr) cluster = std::make_unique<PgCluster>();
  return *cluster;
}

}  // namespace ordo::testing
