#include "fence_install.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string_view>
#include <vector>

#include "ordo/registry.h"
#include "ordo_sql/fence.h"
#include "pg_connection.h"

namespace ordo::cli {
namespace {

enum class Engine { kPostgresql, kSqlite };

// PostgreSQL refuses longer identifiers by truncating them, which would name another object.
constexpr std::size_t kMaxPgIdentifier = 63;

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string QuoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

// Replaces every {{key}} of `script`; a placeholder left over is a bug in sql/fence/.
Result<std::string> Render(std::string_view name, const std::map<std::string, std::string>& values) {
  std::string out(sql::FenceSql(name));
  if (out.empty()) return InternalError("ordo fence: no embedded script '" + std::string(name) + "'");
  for (const auto& [key, value] : values) {
    const std::string placeholder = "{{" + key + "}}";
    for (auto pos = out.find(placeholder); pos != std::string::npos;
         pos = out.find(placeholder, pos + value.size())) {
      out.replace(pos, placeholder.size(), value);
    }
  }
  if (auto pos = out.find("{{"); pos != std::string::npos) {
    return InternalError("ordo fence: script '" + std::string(name) +
                         "' has an unfilled placeholder at " + out.substr(pos, 30));
  }
  return out;
}

Status CheckName(std::string_view what, const std::string& name) {
  if (name.empty()) return InvalidArgumentError(std::string(what) + " must not be empty");
  if (name.find('\0') != std::string::npos) {
    return InvalidArgumentError(std::string(what) + " must not contain NUL");
  }
  return OkStatus();
}

// What one invocation is about, checked and with every name quoted for SQL.
struct Plan {
  Engine engine = Engine::kPostgresql;
  std::string masked;        // the URL for messages
  std::string sqlite_path;   // kSqlite
  pg::Config pg;             // kPostgresql
  bool row = false;          // per-row fence (else resource fence)
  std::string schema;        // PostgreSQL: ordo's schema, unquoted
  bool explicit_schema = false;
  std::string table_schema;  // "schema" of "schema.table", or empty
  std::string table;         // unquoted
  std::string column;        // unquoted
  std::string table_ident;   // quoted, qualified if table_schema is set
  std::string pg_trigger;    // PostgreSQL trigger name, unquoted
  std::string sqlite_insert_trigger, sqlite_update_trigger;
};

Result<Plan> MakePlan(const FenceTarget& t) {
  Plan p;
  auto url = ParseBackendUrl(t.database);
  if (!url.ok()) return url.status();
  p.masked = url->Masked();
  if (url->scheme == "postgresql" || url->scheme == "postgres") {
    p.engine = Engine::kPostgresql;
    auto config = pg::ParseConfig(*url);
    if (!config.ok()) return config.status();
    p.pg = std::move(*config);
    p.masked = p.pg.masked;
  } else if (url->scheme == "sqlite") {
    p.engine = Engine::kSqlite;
    if (url->has_authority && !url->host.empty()) {
      return InvalidArgumentError("sqlite URL '" + p.masked +
                                  "' has a host; write sqlite:///absolute/path.db");
    }
    if (url->path.empty() || url->path == "/" || url->path.back() == '/') {
      return InvalidArgumentError("sqlite URL '" + p.masked +
                                  "' names no database file; write sqlite:///absolute/path.db");
    }
    ORDO_RETURN_IF_ERROR(url->CheckQuery({}));
    p.sqlite_path = url->path;
  } else {
    return InvalidArgumentError("ordo fence works on postgresql:// and sqlite:/// databases, not '" +
                                p.masked + "'");
  }

  if (t.table.empty() != t.column.empty()) {
    return InvalidArgumentError("--table and --column go together: the per-row fence needs both");
  }
  p.row = !t.table.empty();
  p.explicit_schema = !t.schema.empty();
  p.schema = p.explicit_schema ? t.schema : "public";
  ORDO_RETURN_IF_ERROR(CheckName("--schema", p.schema));
  if (p.engine == Engine::kSqlite && p.explicit_schema) {
    return InvalidArgumentError("--schema applies to PostgreSQL only; SQLite has no schemas");
  }
  if (p.engine == Engine::kSqlite && !p.row) {
    return InvalidArgumentError(
        "SQLite has no resource fence (it has no stored functions); fence a column of your table "
        "with --table T --column C");
  }
  if (!p.row) return p;

  ORDO_RETURN_IF_ERROR(CheckName("--table", t.table));
  ORDO_RETURN_IF_ERROR(CheckName("--column", t.column));
  p.column = t.column;
  if (auto dot = t.table.find('.'); p.engine == Engine::kPostgresql && dot != std::string::npos) {
    p.table_schema = t.table.substr(0, dot);
    p.table = t.table.substr(dot + 1);
    ORDO_RETURN_IF_ERROR(CheckName("the schema of --table", p.table_schema));
    ORDO_RETURN_IF_ERROR(CheckName("--table", p.table));
    if (p.table.find('.') != std::string::npos) {
      return InvalidArgumentError("--table '" + t.table + "' has more than one '.'; write "
                                  "TABLE or SCHEMA.TABLE");
    }
  } else {
    p.table = t.table;
  }
  p.table_ident = (p.table_schema.empty() ? "" : QuoteIdent(p.table_schema) + ".") +
                  QuoteIdent(p.table);
  p.pg_trigger = "ordo_fence_" + p.column;
  if (p.engine == Engine::kPostgresql &&
      (p.pg_trigger.size() > kMaxPgIdentifier || p.schema.size() > kMaxPgIdentifier ||
       p.table.size() > kMaxPgIdentifier || p.table_schema.size() > kMaxPgIdentifier)) {
    return InvalidArgumentError("a name is too long for PostgreSQL (63 bytes; the trigger is "
                                "named ordo_fence_<column>)");
  }
  p.sqlite_insert_trigger = "ordo_fence_" + p.table + "_" + p.column + "_insert";
  p.sqlite_update_trigger = "ordo_fence_" + p.table + "_" + p.column + "_update";
  return p;
}

// The statements of a plan, without BEGIN/COMMIT.
Result<std::string> Script(const Plan& p) {
  std::string out;
  if (p.engine == Engine::kSqlite) {
    const std::string where = p.table + "." + p.column;
    return Render("sqlite_row",
                  {{"table", p.table_ident},
                   {"column", QuoteIdent(p.column)},
                   {"trigger_insert", QuoteIdent(p.sqlite_insert_trigger)},
                   {"trigger_update", QuoteIdent(p.sqlite_update_trigger)},
                   {"message_null",
                    QuoteLiteral("ordo: stale fencing token: " + where +
                                 " must be set to the writer's token (an integer, not NULL)")},
                   {"message_stale",
                    QuoteLiteral("ordo: stale fencing token: " + where +
                                 " may not be lowered or cleared (a newer token has written "
                                 "this row)")}});
  }
  const std::string schema = QuoteIdent(p.schema);
  if (p.explicit_schema) {
    auto s = Render("postgresql_schema", {{"schema", schema}});
    if (!s.ok()) return s.status();
    out += *s + "\n";
  }
  if (!p.row) {
    auto s = Render("postgresql_resource", {{"schema", schema}});
    if (!s.ok()) return s.status();
    return out + *s;
  }
  auto s = Render("postgresql_row", {{"schema", schema},
                                     {"table", p.table_ident},
                                     {"table_literal", QuoteLiteral(p.table_ident)},
                                     {"trigger", QuoteIdent(p.pg_trigger)},
                                     {"trigger_literal", QuoteLiteral(p.pg_trigger)},
                                     {"column_literal", QuoteLiteral(p.column)}});
  if (!s.ok()) return s.status();
  return out + *s;
}

std::string What(const Plan& p) {
  if (!p.row) return "resource fence " + p.schema + ".ordo_fence(resource, token)";
  return "per-row fence on " + (p.table_schema.empty() ? "" : p.table_schema + ".") + p.table +
         "." + p.column;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

// Checks the user's table and column; returns whether the fence is already installed.
Result<bool> CheckPostgresql(pqxx::work& tx, const Plan& p) {
  if (!p.explicit_schema &&
      tx.exec_params("SELECT 1 FROM pg_namespace WHERE nspname = $1", p.schema).empty()) {
    return InvalidArgumentError("schema '" + p.schema + "' does not exist in " + p.masked +
                                "; name one with --schema");
  }
  if (!p.row) {
    pqxx::result r = tx.exec_params(
        "SELECT to_regclass($1) IS NOT NULL AND to_regprocedure($2) IS NOT NULL",
        QuoteIdent(p.schema) + ".ordo_fences",
        QuoteIdent(p.schema) + ".ordo_fence(text, bigint)");
    return r[0][0].as<bool>();
  }
  const std::string shown = (p.table_schema.empty() ? "" : p.table_schema + ".") + p.table;
  pqxx::result rel = tx.exec_params(
      "SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass($1)", p.table_ident);
  if (rel.empty()) {
    return InvalidArgumentError("table '" + shown + "' does not exist in " + p.masked +
                                " (names are case-sensitive; unqualified ones follow search_path)");
  }
  const std::string kind = rel[0][0].as<std::string>();
  if (kind != "r" && kind != "p") {
    return InvalidArgumentError("'" + shown + "' in " + p.masked + " is not a table");
  }
  pqxx::result col = tx.exec_params(
      "SELECT t.typname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
      "JOIN pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 "
      "AND NOT a.attisdropped",
      p.table_ident, p.column);
  if (col.empty()) {
    return InvalidArgumentError("table '" + shown + "' has no column '" + p.column + "' in " +
                                p.masked);
  }
  const std::string type = col[0][0].as<std::string>();
  if (type != "int2" && type != "int4" && type != "int8") {
    return InvalidArgumentError("column '" + shown + "." + p.column + "' is " +
                                col[0][1].as<std::string>() +
                                ", not an integer type (smallint, integer or bigint): fencing "
                                "tokens are integers");
  }
  pqxx::result trig = tx.exec_params(
      "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2", p.table_ident,
      p.pg_trigger);
  return !trig.empty();
}

Result<std::string> InstallPostgresql(const Plan& p, const std::string& script) {
  std::string report;
  pg::Outcome outcome = pg::Guard("ordo fence install", p.pg, [&]() -> Status {
    pqxx::connection conn(p.pg.conninfo);
    pqxx::work tx(conn);
    // A table that stays locked by the application's transactions gives a clear error rather
    // than a hang: CREATE TRIGGER needs a SHARE ROW EXCLUSIVE lock on it.
    tx.exec("SET LOCAL lock_timeout = '10s'");
    auto installed = CheckPostgresql(tx, p);
    if (!installed.ok()) return installed.status();  // tx rolls back: nothing changed
    if (*installed) {
      report = "already installed: " + What(p) + " (nothing changed)";
      return OkStatus();
    }
    tx.exec(script);
    tx.commit();
    report = "installed " + What(p);
    return OkStatus();
  });
  if (!outcome.status.ok()) return outcome.status;
  return report;
}

// ---------------------------------------------------------------------------------------------
// SQLite

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;

Status SqliteError(const Plan& p, sqlite3* db, std::string_view what) {
  const int code = sqlite3_extended_errcode(db);
  std::string message = std::string(what) + " on " + p.masked + ": " + sqlite3_errmsg(db);
  if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
    return UnavailableError(message + " (the database stayed locked)");
  }
  if ((code & 0xff) == SQLITE_CANTOPEN || (code & 0xff) == SQLITE_NOTADB ||
      (code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_PERM) {
    return InvalidArgumentError(message);
  }
  return InternalError(message);
}

// Runs one query with text parameters; returns its rows' first columns.
Result<std::vector<std::string>> SqliteColumn(const Plan& p, sqlite3* db, const char* sql,
                                              const std::vector<std::string>& params) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
    return SqliteError(p, db, "ordo fence install");
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
  for (std::size_t i = 0; i < params.size(); ++i) {
    sqlite3_bind_text(raw, static_cast<int>(i + 1), params[i].c_str(),
                      static_cast<int>(params[i].size()), SQLITE_TRANSIENT);
  }
  std::vector<std::string> out;
  for (;;) {
    const int rc = sqlite3_step(raw);
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return SqliteError(p, db, "ordo fence install");
    const auto* text = sqlite3_column_text(raw, 0);
    out.emplace_back(text == nullptr ? "" : reinterpret_cast<const char*>(text));
  }
}

Result<bool> CheckSqlite(const Plan& p, sqlite3* db) {
  auto tables = SqliteColumn(
      p, db, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE AND type IN "
             "('table', 'view')", {p.table});
  if (!tables.ok()) return tables.status();
  if (tables->empty()) {
    return InvalidArgumentError("table '" + p.table + "' does not exist in " + p.masked);
  }
  if ((*tables)[0] != "table") {
    return InvalidArgumentError("'" + p.table + "' in " + p.masked + " is not a table");
  }
  auto types = SqliteColumn(p, db, "SELECT type FROM pragma_table_info(?1) WHERE name = ?2 "
                                   "COLLATE NOCASE", {p.table, p.column});
  if (!types.ok()) return types.status();
  if (types->empty()) {
    return InvalidArgumentError("table '" + p.table + "' has no column '" + p.column + "' in " +
                                p.masked);
  }
  // SQLite's affinity rule: a declared type containing "INT" has INTEGER affinity.
  std::string upper = (*types)[0];
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper.find("INT") == std::string::npos) {
    return InvalidArgumentError("column '" + p.table + "." + p.column + "' is declared '" +
                                (*types)[0] +
                                "', not an integer type (INTEGER affinity): fencing tokens are "
                                "integers");
  }
  auto triggers = SqliteColumn(
      p, db, "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name IN (?1, ?2)",
      {p.sqlite_insert_trigger, p.sqlite_update_trigger});
  if (!triggers.ok()) return triggers.status();
  return triggers->size() == 2;
}

Result<std::string> InstallSqlite(const Plan& p, const std::string& script) {
  sqlite3* raw = nullptr;
  // No SQLITE_OPEN_CREATE: a mistyped path is an error, not a new empty database.
  const int rc = sqlite3_open_v2(p.sqlite_path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  SqliteDb db(raw);
  if (rc != SQLITE_OK) {
    return InvalidArgumentError("cannot open the SQLite database " + p.masked + ": " +
                                (raw ? sqlite3_errmsg(raw) : "out of memory") +
                                " (ordo fence does not create databases)");
  }
  sqlite3_busy_timeout(raw, 10'000);
  if (sqlite3_exec(raw, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(p, raw, "ordo fence install: BEGIN");
  }
  auto installed = CheckSqlite(p, raw);
  Status status = installed.ok() ? OkStatus() : installed.status();
  if (status.ok() && !*installed &&
      sqlite3_exec(raw, script.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = SqliteError(p, raw, "ordo fence install");
  }
  if (status.ok() && sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = SqliteError(p, raw, "ordo fence install: COMMIT");
  }
  if (!status.ok()) {
    sqlite3_exec(raw, "ROLLBACK", nullptr, nullptr, nullptr);  // nothing changed
    return status;
  }
  return *installed ? "already installed: " + What(p) + " (nothing changed)"
                    : "installed " + What(p);
}

}  // namespace

Result<std::string> RenderFenceSql(const FenceTarget& target) {
  auto plan = MakePlan(target);
  if (!plan.ok()) return plan.status();
  auto script = Script(*plan);
  if (!script.ok()) return script.status();
  return "-- ordo fence sql: " + What(*plan) + " for " + plan->masked + "\n" +
         (plan->engine == Engine::kSqlite ? "BEGIN IMMEDIATE;\n" : "BEGIN;\n") + *script +
         "\nCOMMIT;\n";
}

Result<std::string> InstallFence(const FenceTarget& target) {
  auto plan = MakePlan(target);
  if (!plan.ok()) return plan.status();
  auto script = Script(*plan);
  if (!script.ok()) return script.status();
  return plan->engine == Engine::kSqlite ? InstallSqlite(*plan, *script)
                                         : InstallPostgresql(*plan, *script);
}

}  // namespace ordo::cli
