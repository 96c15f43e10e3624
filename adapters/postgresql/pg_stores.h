// FencedStore and VersionedStore on PostgreSQL (tables ordo.fenced and ordo.objects).
#ifndef ORDO_ADAPTERS_POSTGRESQL_PG_STORES_H_
#define ORDO_ADAPTERS_POSTGRESQL_PG_STORES_H_

#include "ordo/store.h"
#include "pg_connection.h"

namespace ordo::pg {

// Every call is one statement on a pooled connection (see statements.h for the SQL and the
// invariant each keeps); strict mode checks the live holder in that same statement.
// Thread-safe; shared by every process using the database.
class PgFencedStore final : public FencedStore {
 public:
  explicit PgFencedStore(Pool& pool) : pool_(pool) {}
  Result<FencedWrite> Write(std::string_view key, std::string_view data, std::uint64_t token,
                            std::string_view lock_name = {}) override;
  Result<FencedValue> Read(std::string_view key, std::uint64_t token = 0,
                           std::string_view lock_name = {}) override;

 private:
  // The key's fence now, for a refusal whose snapshot was older than the refusing row.
  std::uint64_t CurrentFence(std::string_view key, std::uint64_t seen, std::uint64_t token);
  Pool& pool_;
};

class PgVersionedStore final : public VersionedStore {
 public:
  explicit PgVersionedStore(Pool& pool) : pool_(pool) {}
  Result<Versioned> Get(std::string_view key) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value, std::uint64_t token,
                                       std::string_view lock_name = {}) override;

 private:
  Pool& pool_;
};

}  // namespace ordo::pg

#endif  // ORDO_ADAPTERS_POSTGRESQL_PG_STORES_H_
