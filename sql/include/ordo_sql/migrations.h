// The embedded schema migrations (generated from sql/<engine>/NNNN_*.sql at build time).
#ifndef ORDO_SQL_MIGRATIONS_H_
#define ORDO_SQL_MIGRATIONS_H_

#include <span>
#include <string_view>

namespace ordo::sql {

struct Migration {
  int version;            // NNNN from the file name; versions are 1, 2, 3, … without gaps
  std::string_view name;  // the file name
  std::string_view sql;   // the file's text
};

// Sorted by version.
std::span<const Migration> PostgresqlMigrations();
std::span<const Migration> SqliteMigrations();

}  // namespace ordo::sql

#endif  // ORDO_SQL_MIGRATIONS_H_
