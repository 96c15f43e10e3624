#include "pg_stores.h"

#include <limits>

#include "ordo/names.h"
#include "statements.h"

namespace ordo::pg {
namespace {

std::uint64_t U64(const pqxx::field& f) { return f.is_null() ? 0 : f.as<std::uint64_t>(); }

pqxx::binarystring Bytes(std::string_view data) {
  return pqxx::binarystring(data.data(), data.size());
}

Status NotLiveHolder(std::uint64_t token, std::string_view lock_name, std::uint64_t fence) {
  return StaleTokenError("token " + std::to_string(token) + " is not a live holder of lock '" +
                             std::string(lock_name) + "'",
                         fence);
}

Status Stale(std::string_view key, std::uint64_t token, std::uint64_t fence) {
  return StaleTokenError("token " + std::to_string(token) + " is older than the fence " +
                             std::to_string(fence) + " of key '" + std::string(key) + "'",
                         fence);
}

}  // namespace

std::uint64_t PgFencedStore::CurrentFence(std::string_view key, std::uint64_t seen,
                                          std::uint64_t token) {
  if (seen > token) return seen;  // the snapshot already explains the refusal
  std::uint64_t fence = seen;
  pool_.Run("read fence", [&](pqxx::connection& c) {
         pqxx::nontransaction tx(c);
         auto r = tx.exec_params(std::string(sql::kFencedFence), std::string(key));
         if (!r.empty()) fence = U64(r[0][0]);
         return OkStatus();
       })
      .IgnoreError();  // best effort: only the number in the message depends on it
  return fence;
}

Result<FencedWrite> PgFencedStore::Write(std::string_view key, std::string_view data,
                                         std::uint64_t token, std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/true));
  bool admitted = false;
  bool written = false;
  FencedWrite out;
  std::uint64_t seen = 0;
  ORDO_RETURN_IF_ERROR(pool_.Run("fenced write", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto row = tx.exec_params1(std::string(sql::kFencedWrite), std::string(key), Bytes(data),
                               static_cast<std::int64_t>(token), std::string(lock_name));
    admitted = row[0].as<bool>();
    written = !row[1].is_null();
    out.token = U64(row[1]);
    out.version = U64(row[2]);
    seen = U64(row[3]);
    return OkStatus();
  }));
  if (!admitted) return NotLiveHolder(token, lock_name, seen);
  if (!written) return Stale(key, token, CurrentFence(key, seen, token));
  return out;
}

Result<FencedValue> PgFencedStore::Read(std::string_view key, std::uint64_t token,
                                        std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/false));
  if (token == 0 && !lock_name.empty()) {
    return InvalidArgumentError("a strict-mode read needs a fencing token");
  }
  bool admitted = true;
  bool found = false;
  bool has_value = false;
  std::uint64_t seen = 0;
  FencedValue out;
  ORDO_RETURN_IF_ERROR(pool_.Run("fenced read", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    if (token == 0) {
      auto r = tx.exec_params(std::string(sql::kFencedRead), std::string(key));
      found = !r.empty();
      if (found) {
        out.token = U64(r[0][0]);
        out.data = pqxx::binarystring(r[0][1]).str();
        has_value = r[0][2].as<bool>();
        out.version = U64(r[0][3]);
      }
      return OkStatus();
    }
    auto row = tx.exec_params1(std::string(sql::kFencedRegister), std::string(key),
                               static_cast<std::int64_t>(token), std::string(lock_name));
    admitted = row[0].as<bool>();
    found = !row[1].is_null();
    if (found) {
      out.token = U64(row[1]);
      out.data = pqxx::binarystring(row[2]).str();
      has_value = row[3].as<bool>();
      out.version = U64(row[4]);
    }
    seen = U64(row[5]);
    return OkStatus();
  }));
  if (!admitted) return NotLiveHolder(token, lock_name, seen);
  if (token != 0 && !found) return Stale(key, token, CurrentFence(key, seen, token));
  if (!found || !has_value) {
    return NotFoundError("fenced key '" + std::string(key) + "' has no value" +
                         (token != 0 ? " (token " + std::to_string(token) + " was registered)"
                                     : std::string()));
  }
  return out;
}

Result<Versioned> PgVersionedStore::Get(std::string_view key) {
  ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
  std::optional<Versioned> out;
  ORDO_RETURN_IF_ERROR(pool_.Run("get object", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_params(std::string(sql::kObjectGet), std::string(key));
    if (!r.empty()) out = Versioned{pqxx::binarystring(r[0][0]).str(), U64(r[0][1])};
    return OkStatus();
  }));
  if (!out) return NotFoundError("object '" + std::string(key) + "' does not exist");
  return *out;
}

Result<std::uint64_t> PgVersionedStore::CompareAndSwap(std::string_view key,
                                                       std::uint64_t expected_version,
                                                       std::string_view value,
                                                       std::uint64_t token,
                                                       std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, true, token, lock_name));
  bool admitted = false;
  std::uint64_t new_version = 0;
  std::uint64_t fence = 0;
  std::uint64_t current = 0;
  ORDO_RETURN_IF_ERROR(pool_.Run("fenced compare-and-swap object", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto row = tx.exec_params1(std::string(sql::kObjectFencedCas), std::string(key),
                               Bytes(value), static_cast<std::int64_t>(expected_version),
                               static_cast<std::int64_t>(token), std::string(lock_name));
    admitted = row[0].as<bool>();
    new_version = U64(row[1]);
    fence = U64(row[2]);
    current = U64(row[3]);
    if (admitted && new_version == 0 && fence <= token && current == expected_version) {
      // The snapshot predates the write that beat us; report the object as it is now.
      auto now = tx.exec_params(std::string(sql::kObjectFenceAndVersion), std::string(key));
      fence = now.empty() ? 0 : U64(now[0][0]);
      current = now.empty() ? 0 : U64(now[0][1]);
    }
    return OkStatus();
  }));
  if (new_version != 0) return new_version;
  if (token < fence) return StaleObjectToken(key, token, fence);
  if (!admitted) return NotLiveHolder(token, lock_name, fence);
  return ObjectVersionMismatch(key, current, expected_version);
}

Result<std::uint64_t> PgVersionedStore::CompareAndSwap(std::string_view key,
                                                       std::uint64_t expected_version,
                                                       std::string_view value) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, false, 0, {}));
  std::uint64_t new_version = 0;
  std::uint64_t current = 0;
  ORDO_RETURN_IF_ERROR(pool_.Run("compare-and-swap object", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto row = tx.exec_params1(std::string(sql::kObjectCas), std::string(key), Bytes(value),
                               static_cast<std::int64_t>(expected_version));
    new_version = U64(row[0]);
    current = U64(row[1]);
    if (new_version == 0 && current == expected_version) {
      // The snapshot predates the write that beat us; report the version that won.
      auto now = tx.exec_params(std::string(sql::kObjectVersion), std::string(key));
      current = now.empty() ? 0 : U64(now[0][0]);
    }
    return OkStatus();
  }));
  if (new_version != 0) return new_version;
  return ObjectVersionMismatch(key, current, expected_version);
}

}  // namespace ordo::pg
