// The sqlite:// backend's FencedStore and VersionedStore, on the tables `fenced` and `objects`
// of the same database file as the locks (so strict mode can check the lock's holders in the
// same SQL statement as the write).
//
// Thread safety: safe for concurrent use from many threads and processes; each call is one
// short transaction. Errors as in ordo/store.h; SQLite failures as in SqliteError.
#ifndef ORDO_ADAPTERS_SQLITE_SQLITE_STORES_H_
#define ORDO_ADAPTERS_SQLITE_SQLITE_STORES_H_

#include <memory>

#include "ordo/store.h"
#include "sqlite_db.h"

namespace ordo::sqlite {

class SqliteFencedStore final : public FencedStore {
 public:
  explicit SqliteFencedStore(std::shared_ptr<Database> db) : db_(std::move(db)) {}
  Result<FencedWrite> Write(std::string_view key, std::string_view data, std::uint64_t token,
                            std::string_view lock_name = {}) override;
  Result<FencedValue> Read(std::string_view key, std::uint64_t token = 0,
                           std::string_view lock_name = {}) override;

 private:
  std::shared_ptr<Database> db_;
};

class SqliteVersionedStore final : public VersionedStore {
 public:
  explicit SqliteVersionedStore(std::shared_ptr<Database> db) : db_(std::move(db)) {}
  Result<Versioned> Get(std::string_view key) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value, std::uint64_t token,
                                       std::string_view lock_name = {}) override;

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace ordo::sqlite

#endif  // ORDO_ADAPTERS_SQLITE_SQLITE_STORES_H_
