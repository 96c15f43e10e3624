#include "pg_migrate.h"

#include <string>

#include "ordo_sql/migrations.h"
#include "statements.h"

namespace ordo::pg {
namespace {

// pg_advisory_xact_lock key for migrations: "ordo" in ASCII, then "migr". Any constant works
// as long as every ordo binary uses the same one.
constexpr long long kMigrationLockKey = 0x6f72646f6d696772LL;

Status TooNew(const Pool& pool, int found) {
  return InvalidArgumentError(
      "database schema version " + std::to_string(found) + " at " + pool.config().masked +
      " is newer than this ordo supports (" + std::to_string(LatestSchemaVersion()) +
      "); upgrade ordo — the schema is never downgraded");
}

}  // namespace

int LatestSchemaVersion() {
  const auto migrations = ordo::sql::PostgresqlMigrations();
  return migrations.empty() ? 0 : migrations.back().version;
}

Status Migrate(Pool& pool) {
  const int latest = LatestSchemaVersion();
  // Fast path, with no lock and no DDL (so a role without CREATE can open a migrated database).
  int current = -1;
  ORDO_RETURN_IF_ERROR(pool.Run("read schema version", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    if (!tx.exec(std::string(sql::kSchemaExists))[0][0].as<bool>()) return OkStatus();
    current = tx.exec(std::string(sql::kSchemaVersion))[0][0].as<int>();
    return OkStatus();
  }));
  if (current > latest) return TooNew(pool, current);
  if (current == latest) return OkStatus();

  return pool.Run("migrate schema", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // Everything below runs under the lock, so concurrent CREATE … IF NOT EXISTS never race
    // (they can fail with a unique violation when run concurrently without it).
    tx.exec_params(std::string(sql::kMigrationLock), kMigrationLockKey);
    tx.exec(std::string(sql::kCreateSchema));
    tx.exec(std::string(sql::kCreateMigrationsTable));
    const int found = tx.exec(std::string(sql::kSchemaVersion))[0][0].as<int>();
    if (found > latest) return TooNew(pool, found);  // tx rolls back: nothing changes
    for (const auto& m : ordo::sql::PostgresqlMigrations()) {
      if (m.version <= found) continue;
      tx.exec(std::string(m.sql));
      tx.exec_params(std::string(sql::kRecordMigration), m.version, std::string(m.name));
    }
    tx.commit();
    return OkStatus();
  });
}

}  // namespace ordo::pg
