// Schema migrations for the PostgreSQL backend (sql/postgresql/NNNN_*.sql, embedded).
#ifndef ORDO_ADAPTERS_POSTGRESQL_PG_MIGRATE_H_
#define ORDO_ADAPTERS_POSTGRESQL_PG_MIGRATE_H_

#include "ordo/status.h"
#include "pg_connection.h"

namespace ordo::pg {

// Brings the database's schema up to this binary's version. Idempotent, and safe when several
// processes open a new database at once: the whole migration runs in one transaction that first
// takes pg_advisory_xact_lock, so one process migrates and the others then find it done. A schema
// newer than this binary knows is refused (kInvalidArgument), never downgraded. Other errors:
// kUnavailable, kInvalidArgument (no permission to create the schema).
Status Migrate(Pool& pool);

// The schema version this binary brings a database to.
int LatestSchemaVersion();

}  // namespace ordo::pg

#endif  // ORDO_ADAPTERS_POSTGRESQL_PG_MIGRATE_H_
