// A throwaway PostgreSQL cluster for tests: initdb into a fresh temporary directory, a server on
// a free loopback port, one database, all gone when the process exits.
//
//   PgCluster& pg = SharedPgCluster();          // started on first use, one per test process
//   auto locker = ordo::Open(pg.Url("for-update"));
//
// It runs Debian's server binaries (/usr/lib/postgresql/<version>/bin, the highest version, or
// $ORDO_PG_BINDIR). initdb refuses to run as root, so when the tests run as root (as in CI) the
// server binaries run as the `postgres` system user, which owns the temporary directory.
// The server listens on 127.0.0.1 only, keeps its unix socket inside the temporary directory,
// runs with fsync on (durable commits are part of ordo's contract) and small shared_buffers.
// Clients authenticate with a password over TCP (scram-sha-256); the unix socket trusts.
//
// Missing binaries or a server that does not start throw std::runtime_error with a message
// saying what to install or what the server logged: the test fails, it is never skipped.
//
// Cleanup: the destructor stops the server (pg_ctl stop -m fast) and removes the directory. A
// watchdog process does the same if this process dies without running destructors (a crash,
// SIGKILL, a test timeout), so no server outlives its test. A forked child that never calls
// exec does not own the cluster and leaves it alone.
//
// Standby (failover tests):
//
//   PgCluster primary;
//   auto standby = PgCluster::StandbyOf(primary, "standby1");   // pg_basebackup -R, streaming
//   primary.MakeSynchronous("standby1");                         // synchronous_standby_names
//   primary.StopImmediate(); standby->Promote();                 // a crash and a failover
//
// Thread safety: Url() and the accessors may be called from any thread; Start/Stop/Restart
// and CreateDatabase are meant for the test's main thread.
#ifndef ORDO_TOOLS_HARNESS_PG_CLUSTER_H_
#define ORDO_TOOLS_HARNESS_PG_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "subprocess.h"

namespace ordo::testing {

class PgCluster {
 public:
  // initdb + start + create database "ordo_test". Throws std::runtime_error on failure.
  PgCluster();
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // postgresql://ordo:<password>@127.0.0.1:<port>/ordo_test?strategy=<strategy>
  std::string Url(std::string_view strategy = "cas") const;
  // The same for another database, with a raw query string ("strategy=cas&pool_size=2").
  std::string UrlFor(std::string_view database, std::string_view query) const;
  // A libpq connection string for talking SQL to the cluster directly (as the superuser).
  std::string ConnInfo(std::string_view database = "ordo_test") const;

  // Creates a database (createdb). Throws on failure.
  void CreateDatabase(const std::string& name);
  // Runs one SQL command with psql and returns its unaligned, tuples-only output (trailing
  // newline removed). Throws on failure.
  std::string Psql(const std::string& sql, std::string_view database = "ordo_test");

  // pg_ctl stop -m immediate: the server dies as in a crash (no checkpoint; recovery on start).
  void StopImmediate();
  // pg_ctl start on the same port; returns when the server accepts connections.
  void Start();
  // StopImmediate() then Start().
  void Restart();

  // A streaming standby of `primary` (pg_basebackup -R over the primary's unix socket) on its
  // own loopback port, its walreceiver connecting with application_name=`name`. Started, and
  // hot_standby (read-only queries). Throws on failure.
  static std::unique_ptr<PgCluster> StandbyOf(PgCluster& primary, const std::string& name);
  // synchronous_standby_names = '<name>' (and waits for the standby to report itself
  // synchronous, up to 30 s): from then on a commit returns only once the standby has it.
  void MakeSynchronous(const std::string& standby_name);
  // pg_ctl promote -w: the standby becomes a primary (a new timeline).
  void Promote();

  int port() const { return port_; }
  const std::string& password() const { return password_; }
  const std::string& dir() const { return dir_; }
  // The server binaries' directory (initdb, pg_ctl, psql, …).
  const std::string& bin_dir() const { return bin_dir_; }

 private:
  struct StandbyTag {};
  PgCluster(StandbyTag, PgCluster& primary, const std::string& name);
  // mkdtemp, ownership, watchdog: the parts every cluster needs before its data directory.
  void Prepare();
  // Start() on a free loopback port, trying a few.
  void StartOnFreePort();
  // Runs a PostgreSQL binary (as `postgres` when root); returns its exit status and appends its
  // output to the command log. Throws if it cannot be started.
  int RunPg(const std::vector<std::string>& argv, std::string* output = nullptr);
  void StopFast();
  [[noreturn]] void Fail(const std::string& what);

  std::string bin_dir_;
  std::string dir_;
  std::string data_dir_;
  std::string password_;
  int port_ = 0;
  bool running_ = false;
  bool as_postgres_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t owner_pid_ = 0;
  // Stops the server and removes dir_ when this process dies (or at destruction).
  Watchdog watchdog_;
};

// The process-wide cluster, started on first use and stopped at exit. Throws as PgCluster().
PgCluster& SharedPgCluster();

}  // namespace ordo::testing

#endif  // ORDO_TOOLS_HARNESS_PG_CLUSTER_H_
