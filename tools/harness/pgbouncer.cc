#include "pgbouncer.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "pg_cluster.h"
#include "subprocess.h"
#include "temp_dir.h"

namespace ordo::testing {

PgBouncer::PgBouncer(PgCluster& pg, const std::string& pool_mode)
    : pool_mode_(pool_mode), psql_(pg.bin_dir() + "/psql"), password_(pg.password()) {
  if (access("/usr/sbin/pgbouncer", X_OK) != 0) {
    throw std::runtime_error("/usr/sbin/pgbouncer missing: install Debian's 'pgbouncer'");
  }
  port_ = FreeLoopbackPort();
  // In the cluster's directory: readable by the postgres user, whom pgbouncer runs as when
  // the tests run as root (it refuses to run as root).
  base_ = pg.dir() + "/pgbouncer-" + pool_mode;
  {
    std::ofstream users(base_ + ".users");
    users << "\"ordo\" \"" << pg.password() << "\"\n";
  }
  WriteConfig(pg);
  std::vector<std::string> argv = {"/usr/sbin/pgbouncer", "-q"};
  if (geteuid() == 0) argv.insert(argv.end(), {"-u", "postgres"});
  argv.push_back(base_ + ".ini");
  child_ = std::make_unique<Child>(argv);
  watchdog_.Start("kill -9 " + std::to_string(child_->pid()) + " 2>/dev/null");
  if (!WaitForPort(port_, std::chrono::seconds(20))) {
    throw std::runtime_error("pgbouncer did not start listening on port " +
                             std::to_string(port_));
  }
}

PgBouncer::~PgBouncer() {
  watchdog_.Finish();  // kills pgbouncer while its pid is still ours (not yet reaped)
  child_.reset();      // reaps it
}

void PgBouncer::WriteConfig(const PgCluster& pg) {
  std::ofstream ini(base_ + ".ini", std::ios::trunc);
  // server_login_retry: after a failed connect (a primary that just died) PgBouncer waits this
  // long before it tries again (even a host a RELOAD just named), 15 s by default.
  ini << "[databases]\n"
      << "ordo_test = host=127.0.0.1 port=" << pg.port() << " dbname=ordo_test\n"
      << "[pgbouncer]\n"
      << "listen_addr = 127.0.0.1\n"
      << "listen_port = " << port_ << "\n"
      << "unix_socket_dir =\n"
      << "auth_type = scram-sha-256\n"
      << "auth_file = " << base_ << ".users\n"
      << "admin_users = ordo\n"
      << "pool_mode = " << pool_mode_ << "\n"
      << "max_client_conn = 200\n"
      << "default_pool_size = 40\n"
      << "query_wait_timeout = 15\n"
      << "server_login_retry = 0.2\n"
      << "logfile =\n"
      << "pidfile =\n";
}

void PgBouncer::Retarget(const PgCluster& pg) {
  WriteConfig(pg);
  Admin("RELOAD");
}

std::string PgBouncer::Admin(const std::string& command) {
  const std::string out_file = base_ + ".admin-out";
  const int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = Spawn({psql_, "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p",
                           std::to_string(port_), "-U", "ordo", "-d", "pgbouncer", "-c", command},
                          {.stdin_fd = devnull, .stdout_fd = out, .stderr_fd = out,
                           .extra_env = {"PGPASSWORD=" + password_, "PGCONNECT_TIMEOUT=10"}});
  if (out >= 0) close(out);
  if (devnull >= 0) close(devnull);
  if (pid < 0) throw std::runtime_error("fork for psql failed");
  const int code = ExitCode(WaitForExit(pid));
  std::string text = ReadFile(out_file);
  if (code != 0) {
    throw std::runtime_error("pgbouncer admin console: '" + command + "' failed (exit " +
                             std::to_string(code) + "): " + text);
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string PgBouncer::Url(const PgCluster& pg, const std::string& query) const {
  return "postgresql://ordo:" + pg.password() + "@127.0.0.1:" + std::to_string(port_) +
         "/ordo_test?" + query;
}

}  // namespace ordo::testing
