#include "sqlite_stores.h"

#include <limits>

#include "ordo/names.h"
#include "statements.h"

namespace ordo::sqlite {
namespace {

// Why a fenced write or read of `token` was refused, with current() = the key's fence. Runs in
// the refused call's transaction, so it sees what the refusing statement saw.
Status Refusal(Connection& conn, std::string_view key, std::uint64_t token,
               std::string_view lock_name) {
  auto fence_of = conn.QueryInt(statements::kFenceOf, key, /*absent=*/0);
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
    auto write = conn.Prepare(statements::kFencedWrite);
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
    auto stmt = conn.Prepare(token == 0 ? statements::kFencedGet : statements::kFencedRegister);
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
    auto get = conn.Prepare(statements::kObjectGet);
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
    auto cas = conn.Prepare(expected_version == 0 ? statements::kObjectFencedCreate
                                                  : statements::kObjectFencedSwap);
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
    auto read = conn.Prepare(statements::kObjectFenceAndVersion);
    if (!read.ok()) return read.status();
    read->BindText(1, key);
    auto found = read->Step();
    if (!found.ok()) return found.status();
    const auto fence = *found ? static_cast<std::uint64_t>(read->Int(0)) : 0;
    const auto current = *found ? static_cast<std::uint64_t>(read->Int(1)) : 0;
    if (*found) ORDO_RETURN_IF_ERROR(read->Run());
    if (token < fence) return StaleObjectToken(key, token, fence);
    if (!lock_name.empty()) {
      auto live = conn.Prepare(statements::kLiveHolder);
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
    auto cas =
        conn.Prepare(expected_version == 0 ? statements::kObjectCreate : statements::kObjectSwap);
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
    auto current = conn.QueryInt(statements::kObjectVersion, key, /*absent=*/0);
    if (!current.ok()) return current.status();
    const auto now = static_cast<std::uint64_t>(*current);
    return ObjectVersionMismatch(key, now, expected_version);
  });
}

}  // namespace ordo::sqlite
