// sqlite:// — URL parsing, registration with ordo::Open, and Migrate.
//
//   sqlite:///abs/path.db[?strategy=cas|version]   absolute path; the host part must be empty
//   sqlite:relative/path.db[?…]                    relative to the working directory
//   sqlite:/abs/path.db[?…]                        the opaque form of an absolute path
//
// sqlite://name.db is refused rather than guessed at: URL syntax makes "name.db" the host.
#include <memory>
#include <string>

#include "ordo/registry.h"
#include "ordo_sqlite/sqlite.h"
#include "sqlite_db.h"
#include "sqlite_locker.h"

namespace ordo::sqlite {
namespace {

struct SqliteUrl {
  std::string path;
  Strategy strategy = Strategy::kCas;
};

Result<SqliteUrl> ParseSqliteUrl(const BackendUrl& url) {
  if (url.has_authority && (!url.host.empty() || !url.user.empty() || !url.port.empty())) {
    return InvalidArgumentError(
        "sqlite URL '" + url.Masked() + "' names a host ('" + url.host +
        "'); write sqlite:///absolute/path.db (three slashes), or sqlite:relative/path.db for a "
        "path relative to the working directory");
  }
  if (url.path.empty() || url.path == "/") {
    return InvalidArgumentError("sqlite URL '" + url.Masked() +
                                "' has no database path; write sqlite:///absolute/path.db");
  }
  if (url.path == ":memory:" || url.path.back() == '/') {
    return InvalidArgumentError("sqlite URL '" + url.Masked() +
                                "' does not name a database file (in-memory databases are not "
                                "shared between connections; use inproc: for that)");
  }
  ORDO_RETURN_IF_ERROR(url.CheckQuery({"strategy"}));
  SqliteUrl out{url.path, Strategy::kCas};
  const std::string strategy = url.QueryOr("strategy", "cas");
  if (strategy == "version") {
    out.strategy = Strategy::kVersion;
  } else if (strategy != "cas") {
    return InvalidArgumentError("unknown sqlite strategy '" + strategy + "' in '" +
                                url.Masked() + "'; known strategies: cas, version");
  }
  return out;
}

Result<std::unique_ptr<Locker>> OpenSqlite(const BackendUrl& url) {
  auto parsed = ParseSqliteUrl(url);
  if (!parsed.ok()) return parsed.status();
  auto db = Database::Open(parsed->path, nullptr);
  if (!db.ok()) return db.status();
  return NewSqliteLocker(std::move(*db), parsed->strategy);
}

const bool kRegistered = RegisterBackend("sqlite", &OpenSqlite);

}  // namespace

Result<MigrationReport> Migrate(std::string_view url_text) {
  auto url = ParseBackendUrl(url_text);
  if (!url.ok()) return url.status();
  if (url->scheme != "sqlite") {
    return InvalidArgumentError("'" + url->Masked() + "' is not a sqlite:// URL");
  }
  auto parsed = ParseSqliteUrl(*url);
  if (!parsed.ok()) return parsed.status();
  MigrationReport report;
  auto db = Database::Open(parsed->path, &report);
  if (!db.ok()) return db.status();
  return report;
}

}  // namespace ordo::sqlite
