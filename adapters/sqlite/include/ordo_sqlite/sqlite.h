// The sqlite:// backend's entry points beyond ordo::Open (for the `ordo` binary and tests).
//
//   sqlite:///abs/path.db[?strategy=cas|version]   an absolute path (the host part is empty)
//   sqlite:relative/path.db[?strategy=…]            a path relative to the working directory
//
// ordo::Open of such a URL creates the file if needed and applies the schema migrations, so
// `ordo migrate --backend URL` only has to open it; Migrate does the same and says what it did.
#ifndef ORDO_SQLITE_SQLITE_H_
#define ORDO_SQLITE_SQLITE_H_

#include <string>
#include <string_view>
#include <vector>

#include "ordo/status.h"

namespace ordo::sqlite {

struct MigrationReport {
  std::string path;                  // the database file
  int from_version = 0;              // the schema version found (0: a new database)
  int to_version = 0;                // the schema version now
  std::vector<std::string> applied;  // the migration files applied, in order (empty: current)
};

// Opens the database a sqlite:// URL names (creating it if needed) and brings its schema to
// the newest version this build knows, inside one BEGIN IMMEDIATE transaction: several
// processes doing it at once apply each migration exactly once. A database whose schema is
// newer than this build is refused and left untouched.
// Thread-safe. Errors: kInvalidArgument (bad URL, missing directory, not a database, schema
// newer than this build), kUnavailable (busy past busy_timeout, I/O error), kInternal.
Result<MigrationReport> Migrate(std::string_view url);

}  // namespace ordo::sqlite

#endif  // ORDO_SQLITE_SQLITE_H_
