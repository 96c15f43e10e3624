#include "pg_connection.h"

#include <poll.h>

#include <algorithm>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "ordo/duration.h"
#include "statements.h"

namespace ordo::pg {
namespace {

// ordo's own query parameters; every other one must be a libpq connection parameter.
constexpr std::string_view kOrdoParams[] = {"strategy", "pool_size", "statement_timeout",
                                            "prepare"};
// libpq's connection parameters (PostgreSQL 15's libpq, the one Debian 12 ships) that a URL may
// pass through as ?key=value. Left out: dbname (the URL's path names the database) and
// replication (ordo needs ordinary sessions).
constexpr std::string_view kLibpqParams[] = {
    "host",           "hostaddr",        "port",
    "user",           "password",        "passfile",
    "channel_binding", "connect_timeout", "client_encoding",
    "options",        "application_name", "fallback_application_name",
    "keepalives",     "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "sslmode",
    "sslcompression", "sslcert",         "sslkey",
    "sslpassword",    "sslrootcert",     "sslcrl",
    "sslcrldir",      "sslsni",          "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode",
    "krbsrvname",     "gsslib",          "service",
    "target_session_attrs"};
// Values libpq accepts for its enumerated parameters, checked here so that a typo is a
// kInvalidArgument naming it rather than a connection failure.
struct EnumParam {
  std::string_view key;
  std::vector<std::string_view> values;
};
const EnumParam kEnumParams[] = {
    {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
    {"target_session_attrs",
     {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}},
    {"gssencmode", {"disable", "prefer", "require"}},
    {"channel_binding", {"disable", "prefer", "require"}},
    {"sslcompression", {"0", "1"}},
    {"sslsni", {"0", "1"}},
    {"keepalives", {"0", "1"}},
};
constexpr std::string_view kWholeNumberParams[] = {
    "connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout"};

template <typename Range>
bool Has(const Range& range, std::string_view value) {
  return std::find(std::begin(range), std::end(range), value) != std::end(range);
}

template <typename Range>
std::string JoinList(const Range& range, std::string_view sep = ", ") {
  std::string out;
  for (const auto& v : range) {
    if (!out.empty()) out += sep;
    out += v;
  }
  return out;
}

// libpq conninfo value quoting: single quotes, with \ and ' escaped.
std::string Quote(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// libpq messages are multi-line ("…failed: FATAL:  …\n"); one line reads better in a Status.
std::string OneLine(std::string text, const std::string& password) {
  if (password.size() >= 3) {
    for (auto pos = text.find(password); pos != std::string::npos; pos = text.find(password)) {
      text.replace(pos, password.size(), "****");
    }
  }
  std::string out;
  bool line_start = false;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      if (!out.empty() && !line_start) out += "; ";
      line_start = true;
      continue;
    }
    if (line_start && (c == ' ' || c == '\t')) continue;
    line_start = false;
    out.push_back(c == '\t' ? ' ' : c);
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

bool Contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

// A connection failure caused by the URL's credentials or database name: retrying the same URL
// cannot help, so it is kInvalidArgument rather than kUnavailable.
bool IsConfigurationProblem(const std::string& message) {
  return Contains(message, "password authentication failed") ||
         Contains(message, "authentication failed") || Contains(message, "no password supplied") ||
         (Contains(message, "database \"") && Contains(message, "does not exist")) ||
         (Contains(message, "role \"") && Contains(message, "does not exist")) ||
         // libpq refusing a connection parameter's value: the URL is wrong, not the network.
         Contains(message, "invalid connection option") ||
         (Contains(message, "invalid ") && Contains(message, " value")) ||
         Contains(message, "could not match ") || Contains(message, "invalid port number") ||
         Contains(message, "invalid integer value");
}

}  // namespace

std::string_view StrategyName(Strategy strategy) {
  switch (strategy) {
    case Strategy::kCas:
      return "cas";
    case Strategy::kVersion:
      return "version";
    case Strategy::kForUpdate:
      return "for-update";
  }
  return "?";
}

Result<Config> ParseConfig(const BackendUrl& url) {
  Config config;
  config.masked = url.Masked();
  config.password = url.password;
  const std::string where = " in " + config.masked;
  if (url.scheme != "postgresql" && url.scheme != "postgres") {
    return InvalidArgumentError("not a PostgreSQL URL: " + config.masked);
  }
  if (!url.has_authority) {
    return InvalidArgumentError(
        "PostgreSQL URL needs '//': write postgresql://user:password@host:port/database" +
        std::string(where));
  }
  std::string database = url.path;
  if (!database.empty() && database.front() == '/') database.erase(0, 1);
  if (database.empty()) {
    return InvalidArgumentError(
        "PostgreSQL URL names no database: write postgresql://user:password@host:port/database" +
        where);
  }
  if (database.find('/') != std::string::npos) {
    return InvalidArgumentError("PostgreSQL database name '" + database + "' contains '/'" +
                                where);
  }
  std::vector<std::string> unknown;
  for (const auto& [key, value] : url.query) {
    if (!Has(kOrdoParams, key) && !Has(kLibpqParams, key)) unknown.push_back("'" + key + "'");
  }
  if (!unknown.empty()) {
    return InvalidArgumentError(
        std::string(unknown.size() == 1 ? "unknown query parameter " : "unknown query parameters ") +
        JoinList(unknown) + where + "; ordo's own are " + JoinList(kOrdoParams) +
        ", and libpq's connection parameters pass through (" + JoinList(kLibpqParams) + ")");
  }
  if (!url.hosts.empty() && (url.query.count("host") != 0 || url.query.count("hostaddr") != 0 ||
                             url.query.count("port") != 0)) {
    return InvalidArgumentError(
        "PostgreSQL URL names hosts both in the authority and as ?host=, ?hostaddr= or ?port=; "
        "use one form" + where);
  }

  const std::string strategy = url.QueryOr("strategy", "cas");
  if (strategy == "cas") {
    config.strategy = Strategy::kCas;
  } else if (strategy == "version") {
    config.strategy = Strategy::kVersion;
  } else if (strategy == "for-update") {
    config.strategy = Strategy::kForUpdate;
  } else {
    return InvalidArgumentError("unknown strategy '" + strategy +
                                "'; expected for-update, cas or version" + where);
  }
  if (auto it = url.query.find("pool_size"); it != url.query.end()) {
    if (!AllDigits(it->second) || std::stoul(it->second) < 1 || std::stoul(it->second) > 1000) {
      return InvalidArgumentError("pool_size '" + it->second + "' must be 1 to 1000" + where);
    }
    config.pool_size = std::stoul(it->second);
  }
  if (auto it = url.query.find("statement_timeout"); it != url.query.end()) {
    auto d = ParseDuration(it->second);
    if (!d.ok() || d->count() < 1 || *d > std::chrono::hours(1)) {
      return InvalidArgumentError("statement_timeout '" + it->second +
                                  "' must be a duration from 1ms to 1h (e.g. 500ms, 10s)" + where);
    }
    config.statement_timeout = *d;
  }
  if (auto it = url.query.find("prepare"); it != url.query.end()) {
    if (it->second != "on" && it->second != "off") {
      return InvalidArgumentError("prepare '" + it->second + "' must be on or off" + where);
    }
    config.prepare = it->second == "on";
  }
  for (const auto& param : kEnumParams) {
    if (auto it = url.query.find(std::string(param.key));
        it != url.query.end() && !Has(param.values, it->second)) {
      return InvalidArgumentError(std::string(param.key) + " '" + it->second + "' must be " +
                                  JoinList(param.values, " or ") + where);
    }
  }
  for (std::string_view key : kWholeNumberParams) {
    if (auto it = url.query.find(std::string(key)); it != url.query.end() && !AllDigits(it->second)) {
      return InvalidArgumentError(std::string(key) + " '" + it->second +
                                  "' must be a whole number" + where);
    }
  }
  if (auto it = url.query.find("password"); it != url.query.end()) config.password = it->second;

  // libpq's multi-host form: host='h1,h2' port='5432,5433'; an empty port entry means the
  // default port for that host.
  std::string hosts;
  std::string ports;
  bool any_port = false;
  for (std::size_t i = 0; i < url.hosts.size(); ++i) {
    if (i > 0) {
      hosts += ",";
      ports += ",";
    }
    hosts += url.hosts[i].host;
    ports += url.hosts[i].port;
    any_port = any_port || !url.hosts[i].port.empty();
  }
  std::string& ci = config.conninfo;
  if (!hosts.empty()) ci += "host=" + Quote(hosts) + " ";
  if (any_port) ci += "port=" + Quote(ports) + " ";
  ci += "dbname=" + Quote(database) + " ";
  if (!url.user.empty()) ci += "user=" + Quote(url.user) + " ";
  if (!url.password.empty()) ci += "password=" + Quote(url.password) + " ";
  if (url.query.count("connect_timeout") == 0) ci += "connect_timeout='5' ";
  if (url.query.count("application_name") == 0) ci += "application_name='ordo' ";
  for (const auto& [key, value] : url.query) {
    if (Has(kLibpqParams, key)) ci += key + "=" + Quote(value) + " ";
  }
  return config;
}

Outcome CurrentOutcome(std::string_view what, const Config& config) noexcept {
  try {
    const std::string context = std::string(what) + " on " + config.masked + ": ";
    try {
      throw;
    } catch (const pqxx::broken_connection& e) {
      const std::string m = OneLine(e.what(), config.password);
      if (IsConfigurationProblem(m)) {
        return {InvalidArgumentError("refused by PostgreSQL: " + context + m), false, true};
      }
      return {UnavailableError("PostgreSQL unreachable or connection lost: " + context + m),
              false, true};
    } catch (const pqxx::in_doubt_error& e) {
      return {UnavailableError("connection lost during commit, outcome unknown: " + context +
                               OneLine(e.what(), config.password)),
              false, true};
    } catch (const pqxx::statement_completion_unknown& e) {
      return {UnavailableError("statement outcome unknown: " + context +
                               OneLine(e.what(), config.password)),
              false, true};
    } catch (const pqxx::serialization_failure& e) {
      return {UnavailableError("serialization failure, retries exhausted: " + context +
                               OneLine(e.what(), config.password)),
              true, false};
    } catch (const pqxx::deadlock_detected& e) {
      return {UnavailableError("deadlock, retries exhausted: " + context +
                               OneLine(e.what(), config.password)),
              true, false};
    } catch (const pqxx::sql_error& e) {
      const std::string& state = e.sqlstate();
      const std::string m = OneLine(e.what(), config.password);
      if (state == "40001" || state == "40P01") {
        return {UnavailableError("transaction conflict, retries exhausted: " + context + m), true,
                false};
      }
      if (state == "55P03") return {LockHeldError(context + m), false, false};
      if (state == "25006") {
        // read_only_sql_transaction: this connection reached a standby (no
        // target_session_attrs=read-write in the URL, or a demoted primary). Discarding it
        // lets the next connection find the primary.
        return {UnavailableError("PostgreSQL server is read-only (a standby?): " + context + m),
                false, true};
      }
      if (state == "26000" || state == "42P05") {
        // A prepared statement missing or already taken on the server connection (a pooler
        // moved the session): the statement did not run, and Pool::Exec stopped preparing.
        return {UnavailableError("prepared statement lost by a pooler: " + context + m), true,
                false};
      }
      if (state == "57014") {
        return {UnavailableError("statement timeout (" +
                                 FormatDuration(config.statement_timeout) +
                                 ") or cancel: " + context + m),
                false, false};
      }
      if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state == "53300") {
        return {UnavailableError("PostgreSQL unavailable: " + context + m), false, true};
      }
      if (state.rfind("53", 0) == 0) {
        return {UnavailableError("PostgreSQL out of resources: " + context + m), false, false};
      }
      if (state.rfind("28", 0) == 0 || state == "3D000" || state == "42501") {
        return {InvalidArgumentError("refused by PostgreSQL: " + context + m), false, false};
      }
      return {InternalError("unexpected PostgreSQL error " + state + ": " + context + m), false,
              false};
    } catch (const pqxx::failure& e) {
      // Any other libpqxx failure leaves the connection in an unknown state.
      return {UnavailableError(context + OneLine(e.what(), config.password)), false, true};
    } catch (const std::exception& e) {
      return {InternalError(context + OneLine(e.what(), config.password)), false, true};
    } catch (...) {
      return {InternalError(context + "unknown exception"), false, true};
    }
  } catch (...) {  // std::bad_alloc while building the message
    return {InternalError("out of memory"), false, true};
  }
}

void BackOffBeforeRetry(int attempt) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const int max_ms = std::min(50, 1 << attempt);
  std::this_thread::sleep_for(std::chrono::milliseconds(rng() % static_cast<unsigned>(max_ms)));
}

Pool::Pool(Config config) : config_(std::move(config)), prepare_(config_.prepare) {}

std::string Pool::Declare(pqxx::connection_base& conn, std::string_view stmt) {
  // FNV-1a of the text: the same SQL always gets the same name, in every process, so that a
  // server connection shared through a pooler can only hold the right statement under it.
  std::uint64_t h = 14695981039346656037ull;
  for (char c : stmt) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "ordo_";
  for (int shift = 60; shift >= 0; shift -= 4) name.push_back(kHex[(h >> shift) & 0xf]);
  conn.prepare(name, std::string(stmt));
  return name;
}

void Pool::StopPreparing(const pqxx::sql_error& e) {
  if (prepare_.exchange(false)) {
    spdlog::warn("ordo: PostgreSQL at {} lost a prepared statement (SQLSTATE {}; a pooler in "
                 "transaction mode?): running statements unprepared from now on; add "
                 "?prepare=off to the URL to say so up front",
                 config_.masked, e.sqlstate());
  }
}

Pool::~Pool() = default;

Result<std::unique_ptr<pqxx::connection>> Pool::Connect() {
  std::unique_ptr<pqxx::connection> conn;
  Outcome outcome = Guard("connect", config_, [&] {
    conn = std::make_unique<pqxx::connection>(config_.conninfo);
    pqxx::nontransaction tx(*conn);
    tx.exec_params(std::string(sql::kSessionSettings),
                   std::to_string(config_.statement_timeout.count()));
    return OkStatus();
  });
  if (!outcome.status.ok()) return outcome.status;
  return conn;
}

std::unique_ptr<pqxx::connection> Pool::PopLive(std::vector<Idle>& idle) {
  // A connection returned moments ago is taken as it is: checking costs a poll() per call on
  // the hot path, and a server that closed it within that moment fails one call with
  // kUnavailable, as any call in flight during a restart does.
  constexpr auto kTrustedIdle = std::chrono::milliseconds(100);
  const auto now = std::chrono::steady_clock::now();
  while (!idle.empty()) {
    Idle entry = std::move(idle.back());
    idle.pop_back();
    if (!entry.conn->is_open()) continue;
    if (now - entry.since < kTrustedIdle) return std::move(entry.conn);
    // An idle connection has nothing to read. If its socket is readable, the server sent an
    // error and closed it (shutdown, restart, terminate): drop it rather than fail a call.
    pollfd p{entry.conn->sock(), POLLIN, 0};
    if (p.fd >= 0 && poll(&p, 1, 0) == 0) return std::move(entry.conn);
  }
  return nullptr;
}

Result<std::unique_ptr<pqxx::connection>> Pool::Borrow() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    const bool got = returned_.wait_for(lock, config_.statement_timeout,
                                        [&] { return lent_ < config_.pool_size; });
    if (!got) {
      return UnavailableError("all " + std::to_string(config_.pool_size) +
                              " pooled connections to " + config_.masked + " stayed busy for " +
                              FormatDuration(config_.statement_timeout) +
                              "; raise pool_size");
    }
    ++lent_;
    if (auto conn = PopLive(idle_)) return conn;
  }
  auto conn = Connect();
  if (!conn.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    --lent_;
    returned_.notify_one();
  }
  return conn;
}

void Pool::Return(std::unique_ptr<pqxx::connection> conn, bool healthy) {
  std::lock_guard<std::mutex> lock(mu_);
  --lent_;
  if (healthy && conn->is_open()) {
    idle_.push_back({std::move(conn), std::chrono::steady_clock::now()});
  }
  returned_.notify_one();
}

Result<std::unique_ptr<pqxx::connection>> Pool::TakeDedicated() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto conn = PopLive(idle_dedicated_)) return conn;
  }
  return Connect();
}

void Pool::ReturnDedicated(std::unique_ptr<pqxx::connection> conn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn->is_open() && idle_dedicated_.size() < config_.pool_size) {
    idle_dedicated_.push_back({std::move(conn), std::chrono::steady_clock::now()});
  }
}

}  // namespace ordo::pg
