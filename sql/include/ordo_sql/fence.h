// The SQL of `ordo fence` (generated from sql/fence/*.sql at build time): templates whose
// {{placeholders}} the installer replaces with quoted identifiers and literals.
#ifndef ORDO_SQL_FENCE_H_
#define ORDO_SQL_FENCE_H_

#include <span>
#include <string_view>

namespace ordo::sql {

struct FenceScript {
  std::string_view name;  // the file name without .sql, e.g. "postgresql_resource"
  std::string_view sql;   // the file's text
};

// Sorted by name.
std::span<const FenceScript> FenceScripts();
// The script named `name`; empty if there is none.
std::string_view FenceSql(std::string_view name);

}  // namespace ordo::sql

#endif  // ORDO_SQL_FENCE_H_
