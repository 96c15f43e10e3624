#include "sqlite_stores.h"

#include <limits>

#include "ordo/names.h"

namespace ordo::sqlite {
namespace {

// A fenced write, in ONE statement. The fence only rises: the row is written only when the
// token is at least the key's fence (fenced.fence <= excluded.fence; an equal token is the same
// holder writing again). In strict mode (?4 is the lock name; NULL otherwise) the SELECT yields
// no row unless the token is a live holder of that lock by SQLite's clock, so the check and the
// write are one atomic step. No row returned = refused, nothing written.
constexpr const char kFencedWrite[] =
    "INSERT INTO fenced (key, fence, value, has_value, version) "
    "SELECT ?1, ?2, ?3, 1, 1 "
    " WHERE ?4 IS NULL "
    "    OR EXISTS (SELECT 1 FROM holders "
    "                WHERE name = ?4 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW ") "
    "ON CONFLICT (key) DO UPDATE "
    "   SET fence = excluded.fence, value = excluded.value, has_value = 1, "
    "       version = fenced.version + 1 "
    " WHERE fenced.fence <= excluded.fence "
    "RETURNING fence, version";

// A fenced read registers its token exactly like a write, value untouched. For a missing key it
// creates a value-less row (has_value = 0) so the raised fence is kept.
constexpr const char kFencedRegister[] =
    "INSERT INTO fenced (key, fence, value, has_value, version) "
    "SELECT ?1, ?2, X'', 0, 0 "
    " WHERE ?3 IS NULL "
    "    OR EXISTS (SELECT 1 FROM holders "
    "                WHERE name = ?3 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW ") "
    "ON CONFLICT (key) DO UPDATE SET fence = excluded.fence "
    " WHERE fenced.fence <= excluded.fence "
    "RETURNING fence, value, has_value, version";

constexpr const char kFencedGet[] =
    "SELECT fence, value, has_value, version FROM fenced WHERE key = ?1";
constexpr const char kFenceOf[] = "SELECT fence FROM fenced WHERE key = ?1";

// Creation: inserts only if absent (expected version 0).
constexpr const char kObjectCreate[] =
    "INSERT INTO objects (key, value, version) VALUES (?1, ?2, 1) "
    "ON CONFLICT (key) DO NOTHING RETURNING version";
// CAS: writes only if the version is still the one the caller read; of N concurrent callers
// from one version, the first to get SQLite's write lock changes the row and every later one
// finds the version moved (exactly one winner).
constexpr const char kObjectSwap[] =
    "UPDATE objects SET value = ?2, version = version + 1 WHERE key = ?1 AND version = ?3 "
    "RETURNING version";
// Fenced CAS, in ONE statement each: ?1 key, ?2 value, ?3 expected version, ?4 token, ?5 lock
// name (NULL = not strict). The row changes only if the token is not below the object's fence
// (which rises to it), the token is a live holder in strict mode, and the version matches; a
// create (expected version 0) inserts only if absent. No row returned = refused, nothing
// written; FencedCasRefusal then says why, token first.
constexpr const char kObjectFencedCreate[] =
    "INSERT INTO objects (key, value, version, fence) "
    "SELECT ?1, ?2, 1, ?4 "
    " WHERE ?3 = 0 AND (?5 IS NULL "
    "    OR EXISTS (SELECT 1 FROM holders "
    "                WHERE name = ?5 AND token = ?4 AND expires_at > " ORDO_SQLITE_NOW ")) "
    "ON CONFLICT (key) DO NOTHING RETURNING version";
constexpr const char kObjectFencedSwap[] =
    "UPDATE objects SET value = ?2, version = version + 1, fence = MAX(fence, ?4) "
    " WHERE key = ?1 AND version = ?3 AND fence <= ?4 "
    "   AND (?5 IS NULL "
    "        OR EXISTS (SELECT 1 FROM holders "
    "                    WHERE name = ?5 AND token = ?4 AND expires_at > " ORDO_SQLITE_NOW ")) "
    "RETURNING version";
constexpr const char kObjectFenceAndVersion[] =
    "SELECT fence, version FROM objects WHERE key = ?1";
constexpr const char kLiveHolder[] =
    "SELECT 1 FROM holders WHERE name = ?1 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW;

constexpr const char kObjectGet[] = "SELECT value, version FROM objects WHERE key = ?1";
constexpr const char kObjectVersion[] = "SELECT version FROM objects WHERE key = ?1";

// Why a fenced write or read of `token` was refused, with current() = the key's fence. Runs in
// the refused call's transaction, so it sees what the refusing statement saw.
Status Refusal(Connection& conn, std::string_view key, std::uint64_t token,
               std::string_view lock_name) {
  auto fence_of = conn.QueryInt(kFenceOf, key, /*absent=*/0);
  if (!fence_of.ok()) return fence_of.status();
  const auto fence = static_cast<std::uint64_t>(*fence_of);
  if (token < fence) {
    return StaleTokenError("token " + std::to_string(token) + " is older than token " +
                               std::to_string(fence) + " already seen for key '" +
                               std::string(key) + "'",
                           fence);
  }
  return StaleTokenError("token " + std::to_string(token) + " is not a live holder of lock '" +
                             std::string(lock_name) + "'",
                         fence);
}

// Reads one (fence, value, has_value, version) row as the fenced read's outcome.
struct FencedRow {
  bool has_value = false;
  FencedValue value;
};

FencedRow ToFencedRow(const Statement& stmt) {
  FencedRow out;
  out.value.token = static_cast<std::uint64_t>(stmt.Int(0));
  out.value.data = stmt.Bytes(1);
  out.has_value = stmt.Int(2) != 0;
  out.value.version = static_cast<std::uint64_t>(stmt.Int(3));
  return out;
}

}  // namespace

Result<FencedWrite> SqliteFencedStore::Write(std::string_view key, std::string_view data,
                                             std::uint64_t token, std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/true));
  return db_->Write([&](Connection& conn) -> Result<FencedWrite> {
    auto write = conn.Prepare(kFencedWrite);
    if (!write.ok()) return write.status();
    write->BindText(1, key).Bind(2, static_cast<std::int64_t>(token)).BindBlob(3, data);
    if (!lock_name.empty()) write->BindText(4, lock_name);
    auto row = write->Step();
    if (!row.ok()) return row.status();
    if (!*row) return Refusal(conn, key, token, lock_name);
    FencedWrite out{static_cast<std::uint64_t>(write->Int(0)),
                    static_cast<std::uint64_t>(write->Int(1))};
    ORDO_RETURN_IF_ERROR(write->Run());  // finish the statement (RETURNING runs to the end)
    return out;
  });
}

Result<FencedValue> SqliteFencedStore::Read(std::string_view key, std::uint64_t token,
                                            std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/false));
  auto run = [&](Connection& conn) -> Result<FencedRow> {
    auto stmt = conn.Prepare(token == 0 ? kFencedGet : kFencedRegister);
    if (!stmt.ok()) return stmt.status();
    stmt->BindText(1, key);
    if (token != 0) {
      stmt->Bind(2, static_cast<std::int64_t>(token));
      if (!lock_name.empty()) stmt->BindText(3, lock_name);
    }
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      if (token != 0) return Refusal(conn, key, token, lock_name);
      return FencedRow{};
    }
    FencedRow out = ToFencedRow(*stmt);
    ORDO_RETURN_IF_ERROR(stmt->Run());
    return out;
  };
  // A fenced read writes (it raises the fence), and must commit even when the key has no value:
  // kNotFound is decided after the transaction.
  auto row = token == 0 ? db_->Read(run) : db_->Write(run);
  if (!row.ok()) return row.status();
  if (!row->has_value) return NotFoundError("key '" + std::string(key) + "' has no value");
  return std::move(row->value);
}

Result<Versioned> SqliteVersionedStore::Get(std::string_view key) {
  ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
  return db_->Read([&](Connection& conn) -> Result<Versioned> {
    auto get = conn.Prepare(kObjectGet);
    if (!get.ok()) return get.status();
    get->BindText(1, key);
    auto row = get->Step();
    if (!row.ok()) return row.status();
    if (!*row) return NotFoundError("object '" + std::string(key) + "' not found");
    return Versioned{get->Bytes(0), static_cast<std::uint64_t>(get->Int(1))};
  });
}

Result<std::uint64_t> SqliteVersionedStore::CompareAndSwap(std::string_view key,
                                                           std::uint64_t expected_version,
                                                           std::string_view value,
                                                           std::uint64_t token,
                                                           std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, true, token, lock_name));
  return db_->Write([&](Connection& conn) -> Result<std::uint64_t> {
    auto cas = conn.Prepare(expected_version == 0 ? kObjectFencedCreate : kObjectFencedSwap);
    if (!cas.ok()) return cas.status();
    cas->BindText(1, key).BindBlob(2, value).Bind(3, static_cast<std::int64_t>(expected_version))
        .Bind(4, static_cast<std::int64_t>(token));
    if (!lock_name.empty()) cas->BindText(5, lock_name);
    auto row = cas->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      const auto version = static_cast<std::uint64_t>(cas->Int(0));
      ORDO_RETURN_IF_ERROR(cas->Run());
      return version;
    }
    // Refused: say why, in this transaction (it sees what the refusing statement saw).
    auto read = conn.Prepare(kObjectFenceAndVersion);
    if (!read.ok()) return read.status();
    read->BindText(1, key);
    auto found = read->Step();
    if (!found.ok()) return found.status();
    const auto fence = *found ? static_cast<std::uint64_t>(read->Int(0)) : 0;
    const auto current = *found ? static_cast<std::uint64_t>(read->Int(1)) : 0;
    if (*found) ORDO_RETURN_IF_ERROR(read->Run());
    if (token < fence) return StaleObjectToken(key, token, fence);
    if (!lock_name.empty()) {
      auto live = conn.Prepare(kLiveHolder);
      if (!live.ok()) return live.status();
      live->BindText(1, lock_name).Bind(2, static_cast<std::int64_t>(token));
      auto is_live = live->Step();
      if (!is_live.ok()) return is_live.status();
      if (!*is_live) {
        return StaleTokenError("token " + std::to_string(token) +
                                   " is not a live holder of lock '" + std::string(lock_name) +
                                   "'",
                               fence);
      }
      ORDO_RETURN_IF_ERROR(live->Run());
    }
    return ObjectVersionMismatch(key, current, expected_version);
  });
}

Result<std::uint64_t> SqliteVersionedStore::CompareAndSwap(std::string_view key,
                                                           std::uint64_t expected_version,
                                                           std::string_view value) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, false, 0, {}));
  return db_->Write([&](Connection& conn) -> Result<std::uint64_t> {
    auto cas = conn.Prepare(expected_version == 0 ? kObjectCreate : kObjectSwap);
    if (!cas.ok()) return cas.status();
    cas->BindText(1, key).BindBlob(2, value);
    if (expected_version != 0) cas->Bind(3, static_cast<std::int64_t>(expected_version));
    auto row = cas->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      const auto version = static_cast<std::uint64_t>(cas->Int(0));
      ORDO_RETURN_IF_ERROR(cas->Run());
      return version;
    }
    // Lost: report the version the object has now (0 when absent), read in this transaction.
    auto current = conn.QueryInt(kObjectVersion, key, /*absent=*/0);
    if (!current.ok()) return current.status();
    const auto now = static_cast<std::uint64_t>(*current);
    return ObjectVersionMismatch(key, now, expected_version);
  });
}

}  // namespace ordo::sqlite
