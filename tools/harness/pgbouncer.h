// A throwaway PgBouncer (Debian's /usr/sbin/pgbouncer) in front of a PgCluster's ordo_test
// database, on a free loopback port, in session or transaction pooling; killed and reaped by
// the destructor.
//
//   PgBouncer bouncer(SharedPgCluster(), "transaction");
//   auto locker = ordo::Open(bouncer.Url(pg, "strategy=cas"));
//
// Failover (PgBouncer does not follow one by itself): what an operator's failover tooling does,
//
//   primary.StopImmediate(); standby->Promote();
//   bouncer.Retarget(*standby);   // rewrites [databases] and RELOADs on the admin console
//
// A watchdog (subprocess.h) kills pgbouncer if this process dies without running destructors.
// When run as root it runs pgbouncer as the `postgres` user (pgbouncer refuses root), with its
// configuration in the cluster's directory, which that user can read. A missing binary or a
// pgbouncer that does not listen within 20 s throws std::runtime_error.
//
// Thread safety: Url() may be called from any thread; construct, Retarget, Admin and destroy
// on one.
#ifndef ORDO_TOOLS_HARNESS_PGBOUNCER_H_
#define ORDO_TOOLS_HARNESS_PGBOUNCER_H_

#include <memory>
#include <string>

#include "subprocess.h"

namespace ordo::testing {

class PgCluster;

class PgBouncer {
 public:
  // pool_mode: "session" or "transaction".
  PgBouncer(PgCluster& pg, const std::string& pool_mode);
  ~PgBouncer();
  PgBouncer(const PgBouncer&) = delete;
  PgBouncer& operator=(const PgBouncer&) = delete;

  // postgresql://ordo:<password>@127.0.0.1:<pgbouncer port>/ordo_test?<query>
  std::string Url(const PgCluster& pg, const std::string& query) const;
  int port() const { return port_; }

  // Points the ordo_test database at `pg` (same user and password) and reloads: new server
  // connections go there; server connections to the old host are closed as they are released.
  // Throws std::runtime_error when the reload fails.
  void Retarget(const PgCluster& pg);
  // One command on the admin console (`SHOW SERVERS`, `RELOAD`, …) through psql, as the ordo
  // user (an admin_users entry); its unaligned, tuples-only output. Throws on failure.
  std::string Admin(const std::string& command);

 private:
  void WriteConfig(const PgCluster& pg);

  std::string base_;       // <cluster dir>/pgbouncer-<mode>: .ini, .users, .admin-out
  std::string pool_mode_;
  std::string psql_;       // the cluster's psql binary
  std::string password_;
  int port_ = 0;
  std::unique_ptr<Child> child_;
  // Kills child_ when this process dies (pgbouncer drops the PR_SET_PDEATHSIG a child could
  // have when it changes to the postgres user).
  Watchdog watchdog_;
};

}  // namespace ordo::testing

#endif  // ORDO_TOOLS_HARNESS_PGBOUNCER_H_
