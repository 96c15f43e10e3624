// ordo/pg_fence.h — resource fences inside your own PostgreSQL transactions, for libpqxx users.
//
//   pqxx::work tx(conn);
//   ordo::Status fenced = ordo::pg::Fence(tx, "orders:42", lease->token);  // first in the tx
//   if (!fenced.ok()) return fenced;   // kStaleToken: a newer holder wrote; do not commit
//   … reads and writes of order 42 …
//   tx.commit();
//
// Fence calls ordo_fence(resource, token), installed by `ordo fence install --database URL`.
// It raises the resource's fence to `token` and keeps that row locked until the transaction
// ends, so the fenced transactions of one resource commit in token order; a call with a higher
// token blocks until a lower token's open transaction ends. Call it before the reads your
// writes depend on: then what you read cannot have been written by a newer holder.
//
// Returns:
//   kOk              the fence is at `token` now (until commit, nobody else can pass it)
//   kStaleToken      the fence is above `token` (Status::current() holds it); the transaction
//                    is aborted by PostgreSQL: do not commit, give up the lock's work
//   kInvalidArgument token 0 or above 2^63-1, or ordo_fence is not installed (SQLSTATE 42883)
//   kUnavailable     the connection broke; the transaction's outcome is rolled back
//   kInternal        any other SQL error (the message has the SQLSTATE)
// It never throws.
//
// Header-only, and deliberately not included by <ordo/ordo.h>, because it includes
// <pqxx/pqxx>. Link libpqxx yourself. Supports libpqxx 6.4 (Debian 12; what ordo's tests use)
// and 7.x: it uses only transaction_base::exec_params, quote_name and sql_error::sqlstate(),
// which both have (7.x is not tested here).
// Thread safety: as libpqxx's — one transaction belongs to one thread at a time.
#ifndef ORDO_PG_FENCE_H_
#define ORDO_PG_FENCE_H_

#include <cstdint>
#include <exception>
#include <limits>
#include <pqxx/pqxx>
#include <string>
#include <string_view>

#include "ordo/status.h"

namespace ordo::pg {

// `schema`: where `ordo fence install --schema` put ordo_fence; empty: search_path finds it.
inline Status Fence(pqxx::transaction_base& tx, std::string_view resource, std::uint64_t token,
                    std::string_view schema = {}) noexcept {
  if (token == 0 || token > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return InvalidArgumentError("ordo::pg::Fence: token " + std::to_string(token) +
                                " is not a fencing token ordo issues (1 .. 2^63-1)");
  }
  try {
    const std::string function =
        schema.empty() ? "ordo_fence" : tx.quote_name(std::string(schema)) + ".ordo_fence";
    tx.exec_params("SELECT " + function + "($1, $2)", std::string(resource),
                   static_cast<std::int64_t>(token));
    return OkStatus();
  } catch (const pqxx::sql_error& e) {
    // libpq's message: "ERROR:  <message>\nHINT: …\nCONTEXT: …"; the first line without the
    // severity is what the caller wants to see.
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    if (what.rfind("ERROR:  ", 0) == 0) what.erase(0, 8);
    if (e.sqlstate() == "OR409") {
      // The message is "ordo: stale fencing token T for resource 'R': the fence is at F".
      std::uint64_t fence = 0;
      constexpr std::string_view kAt = "the fence is at ";
      if (auto pos = what.find(kAt); pos != std::string::npos) {
        for (std::size_t i = pos + kAt.size(); i < what.size() && what[i] >= '0' && what[i] <= '9';
             ++i) {
          fence = fence * 10 + static_cast<std::uint64_t>(what[i] - '0');
        }
      }
      return StaleTokenError(what, fence);
    }
    if (e.sqlstate() == "42883") {
      return InvalidArgumentError("ordo_fence(text, bigint) is not installed in this database "
                                  "(run `ordo fence install --database URL`): " + what);
    }
    if (e.sqlstate().rfind("08", 0) == 0 || e.sqlstate().rfind("57P", 0) == 0) {
      return UnavailableError("ordo_fence: " + what);
    }
    return InternalError("ordo_fence: SQLSTATE " + e.sqlstate() + ": " + what);
  } catch (const pqxx::broken_connection& e) {
    return UnavailableError(std::string("ordo_fence: connection lost: ") + e.what());
  } catch (const std::exception& e) {
    return InternalError(std::string("ordo_fence: ") + e.what());
  } catch (...) {
    return InternalError("ordo_fence: unknown exception");
  }
}

}  // namespace ordo::pg

#endif  // ORDO_PG_FENCE_H_
