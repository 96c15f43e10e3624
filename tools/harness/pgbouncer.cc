#include "pgbouncer.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "pg_cluster.h"
#include "subprocess.h"

namespace ordo::testing {

PgBouncer::PgBouncer(PgCluster& pg, const std::string& pool_mode) {
  if (access("/usr/sbin/pgbouncer", X_OK) != 0) {
    throw std::runtime_error("/usr/sbin/pgbouncer missing: install Debian's 'pgbouncer'");
  }
  port_ = FreeLoopbackPort();
  // In the cluster's directory: readable by the postgres user, whom pgbouncer runs as when
  // the tests run as root (it refuses to run as root).
  const std::string base = pg.dir() + "/pgbouncer-" + pool_mode;
  {
    std::ofstream users(base + ".users");
    users << "\"ordo\" \"" << pg.password() << "\"\n";
  }
  {
    std::ofstream ini(base + ".ini");
    ini << "[databases]\n"
        << "ordo_test = host=127.0.0.1 port=" << pg.port() << " dbname=ordo_test\n"
        << "[pgbouncer]\n"
        << "listen_addr = 127.0.0.1\n"
        << "listen_port = " << port_ << "\n"
        << "unix_socket_dir =\n"
        << "auth_type = scram-sha-256\n"
        << "auth_file = " << base << ".users\n"
        << "pool_mode = " << pool_mode << "\n"
        << "max_client_conn = 200\n"
        << "default_pool_size = 40\n"
        << "query_wait_timeout = 15\n"
        << "logfile =\n"
        << "pidfile =\n";
  }
  std::vector<std::string> argv = {"/usr/sbin/pgbouncer", "-q"};
  if (geteuid() == 0) argv.insert(argv.end(), {"-u", "postgres"});
  argv.push_back(base + ".ini");
  child_ = std::make_unique<Child>(argv);
  if (!WaitForPort(port_, std::chrono::seconds(20))) {
    throw std::runtime_error("pgbouncer did not start listening on port " +
                             std::to_string(port_));
  }
}

PgBouncer::~PgBouncer() = default;

std::string PgBouncer::Url(const PgCluster& pg, const std::string& query) const {
  return "postgresql://ordo:" + pg.password() + "@127.0.0.1:" + std::to_string(port_) +
         "/ordo_test?" + query;
}

}  // namespace ordo::testing
