#include "command_line.h"

#include <CLI/CLI.hpp>
#include <limits>
#include <string>

#include "ordo/duration.h"
#include "ordo/election.h"
#include "ordo/version.h"

namespace ordo::cli {
namespace {

using std::chrono::milliseconds;

// Adds an option that takes a duration ("500ms", "30s", "5m", "1h", bare seconds) within
// [min, max]; a bad one is a CLI11 validation error naming the flag.
CLI::Option* AddDuration(CLI::App* app, const std::string& names, milliseconds* target,
                         const std::string& help, milliseconds min, milliseconds max) {
  // Name the flag by its first long form ("-w,--wait,--timeout" → "--wait").
  const std::size_t dashes = names.find("--");
  const std::string flag = names.substr(dashes, names.find(',', dashes) - dashes);
  return app
      ->add_option_function<std::string>(
          names,
          [target, flag, min, max](const std::string& text) {
            auto d = ParseDuration(text);
            if (!d.ok()) throw CLI::ValidationError(flag, d.status().message());
            if (*d < min || *d > max) {
              throw CLI::ValidationError(flag, "'" + text + "' is outside " +
                                                   FormatDuration(min) + " .. " +
                                                   FormatDuration(max));
            }
            *target = *d;
          },
          help)
      ->type_name("DUR");
}

CLI::Option* AddExitCode(CLI::App* app, const std::string& names, int* target,
                         const std::string& help) {
  return app->add_option(names, *target, help)->check(CLI::Range(0, 255))->type_name("N");
}

CLI::Option* AddBackend(CLI::App* app, std::string* target, const std::string& help) {
  return app->add_option("-b,--backend", *target, help)->envname("ORDO_BACKEND")->type_name("URL");
}

void AddModeFlags(CLI::App* app, LockMode* mode) {
  auto* shared = app->add_flag_callback(
      "-s,--shared", [mode] { *mode = LockMode::kShared; },
      "Take a shared lock: shared holders run together, an exclusive one waits for all");
  auto* exclusive = app->add_flag_callback(
      "-x,-e,--exclusive", [mode] { *mode = LockMode::kExclusive; },
      "Take an exclusive lock (the default)");
  shared->excludes(exclusive);
}

constexpr char kRunHelp[] = R"(Run COMMAND while holding a lock; refuse (exit 1) if someone else holds it.

The lock is taken before COMMAND starts and released after it has exited. COMMAND runs in its
own process group; SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to ordo are forwarded to it, and if
ordo dies (even by SIGKILL) the group is killed. Lease backends are renewed every ttl/3; if the
lease is lost, COMMAND gets SIGTERM, then SIGKILL after --kill-grace, and ordo exits 75.
COMMAND sees ORDO_LOCK_NAME and ORDO_FENCING_TOKEN in its environment, and ORDO_LOCK_SLOT
with --limit.)";

constexpr char kRunExamples[] = R"(
Exit codes: COMMAND's own (128+N if killed by signal N); 1 lock held (-E); 75 lease lost
(--lost-exit-code); 125 ordo's own error; 126 COMMAND cannot be executed; 127 not found.

Examples:
  # crontab: at most one backup at a time; a second start exits 1 at once
  */5 * * * * ordo run -- /usr/local/bin/backup --incremental
  # wait up to 30 s for the lock (flock -w style), exit 3 instead of 1 when still held
  ordo run -w 30 -E 3 --lock nightly -- ./nightly.sh
  # several machines, one PostgreSQL database (or one `ordo serve`: --backend http://host:7575);
  # hold the lock for at least 10 min. SQLite files do not work across machines.
  ordo run --backend 'postgresql://ordo@db.example/ordo?strategy=cas' --ttl 1m \
    --hold-at-least 10m -- ./report
  # readers together, a writer alone
  ordo run -s --lock catalog -- ./read-catalog
  ordo run -x --lock catalog -- ./rebuild-catalog
)";

constexpr char kLockExamples[] = R"(
Output is one JSON object on stdout: a lease {"name","owner","token","mode","expires_at",
"ttl_ms"} for acquire and renew, {"name","token","released"} for release, the lock state
{"name","last_token","holders":[…]} for status, {"error","message"} on failure.
Exit codes: 0 ok; 1 held (acquire, -E); 75 lease lost (renew, release); 125 error.
Locks of fd-bound backends (flock://, fcntl://, postgresql for-update) die with the process
that holds them, so acquire and renew need a lease backend (sqlite://, postgresql:// cas or
version, http://).

Examples:
  export ORDO_BACKEND=sqlite:///var/lib/myapp/locks.db
  lease=$(ordo lock acquire deploy --ttl 5m) || exit
  token=$(printf '%s' "$lease" | jq .token)
  ordo lock renew deploy --token "$token" --ttl 5m
  ordo lock release deploy --token "$token"
  ordo lock status deploy
  ordo lock list --prefix deploy. --watch     # a table, redrawn every second
  ordo lock list --json | jq '.locks[].name'
)";

constexpr char kMigrateExamples[] = R"(
Opening a backend applies its schema migrations (those not yet applied, in order); migrate
does only that and reports. Exit codes: 0 ok, 125 error.

Examples:
  ordo migrate --backend sqlite:///var/lib/ordo/ordo.db
  ordo migrate --backend 'postgresql://ordo@db.internal/ordo'
)";

constexpr char kServeExamples[] = R"(
The default backend is SQLite: /var/lib/ordo/ordo.db for root, else
$XDG_STATE_HOME/ordo/ordo.db (~/.local/state/ordo/ordo.db). Stops on SIGTERM or SIGINT.
Exit codes: 0 clean stop, 125 cannot start.

Examples:
  ordo serve
  ordo serve --listen 0.0.0.0:7575 --backend 'postgresql://ordo@db/ordo' --auth-file tokens.json
  ordo serve --listen 127.0.0.1:0 --max-wait 5m
)";

void AddRun(CLI::App& app, Command& c) {
  auto* run = app.add_subcommand("run", kRunHelp);
  run->callback([&c] { c.kind = Command::Kind::kRun; });
  run->footer(kRunExamples);
  RunOptions& o = c.run;
  AddBackend(run, &o.backend,
             "Lock backend URL (default: flock:// in ~/.local/state/ordo/locks, "
             "/var/lib/ordo/locks for root)");
  run->add_option("-l,--lock", o.lock,
                  "Lock name (default: run-<hash of COMMAND's argv>, so identical command "
                  "lines exclude each other)")
      ->type_name("NAME");
  AddDuration(run, "--ttl", &o.ttl, "Lease time to live, renewed every ttl/3 (default 30s)",
              kMinTtl, kMaxTtl);
  auto* wait = AddDuration(run, "-w,--wait,--timeout", &o.wait,
                           "Wait up to DUR for the lock (bare number = seconds, may be "
                           "fractional); default: do not wait",
                           milliseconds(0), kMaxWait);
  auto* nowait = run->add_flag_callback(
      "-n,--nonblock,--no-wait", [&o] { o.wait = milliseconds(0); },
      "Fail at once if the lock is held (the default)");
  wait->excludes(nowait);
  AddModeFlags(run, &o.mode);
  AddExitCode(run, "-E,--conflict-exit-code", &o.conflict_exit_code,
              "Exit code when the lock is held (default 1)");
  AddExitCode(run, "--lost-exit-code", &o.lost_exit_code,
              "Exit code when the lease is lost while COMMAND runs (default 75)");
  AddDuration(run, "--kill-grace", &o.kill_grace,
              "After SIGTERM on a lost lease, SIGKILL this much later (default 10s)",
              milliseconds(0), kMaxTtl);
  AddDuration(run, "--hold-at-least", &o.hold_at_least,
              "Keep the lock at least DUR after the start, even if COMMAND ends sooner "
              "(lease backends only)",
              milliseconds(0), kMaxTtl);
  run->add_option("--owner", o.owner, "Owner id recorded with the lock (default host:pid:random)")
      ->type_name("ID");
  run->add_option("--limit", o.limit,
                  "Run COMMAND as one of at most N concurrent holders (a semaphore); COMMAND "
                  "also sees ORDO_LOCK_SLOT (default 1: a plain lock)")
      ->check(CLI::Range(1u, kMaxLimit))
      ->type_name("N");
  run->add_flag("-v,--verbose", o.verbose,
                "Report on stderr what ordo does (lock taken, held by whom)");
  run->add_option("command", o.command, "The command and its arguments, after --")
      ->required()
      ->type_name("COMMAND…");
  run->positionals_at_end();
}

constexpr char kElectHelp[] = R"(Campaign in election NAME and run COMMAND only while this candidate leads.

The election NAME is the exclusive lock NAME; the candidate value is its owner and the term is
its fencing token, so terms only grow. ordo waits (with no end by default) until it leads, then
runs COMMAND with ORDO_LEADER_TERM and ORDO_FENCING_TOKEN (both the term) and ORDO_LOCK_NAME
exported, renewing the leadership every ttl/3. When COMMAND exits, ordo resigns. If leadership
is lost, COMMAND gets SIGTERM, then SIGKILL after --kill-grace, and ordo exits 75.)";

constexpr char kElectExamples[] = R"(
Exit codes: COMMAND's own; 1 another candidate leads and --wait elapsed; 75 leadership lost;
125 ordo's own error.

Examples:
  ordo elect scheduler --candidate "$(hostname):8080" --backend sqlite:///var/lib/app/ordo.db \
    -- ./scheduler --fencing-token-from-env
  ordo leader scheduler --watch --backend sqlite:///var/lib/app/ordo.db
)";

void AddElect(CLI::App& app, Command& c) {
  auto* elect = app.add_subcommand("elect", kElectHelp);
  elect->footer(kElectExamples);
  RunOptions& o = c.elect;
  o.election = true;
  elect->callback([&c] { c.kind = Command::Kind::kElect; });
  AddBackend(elect, &o.backend, "Backend URL (default: as for ordo run)");
  elect->add_option("name", o.lock, "The election's name (a lock name)")
      ->required()
      ->type_name("NAME");
  elect->add_option("--candidate", o.owner,
                    "The value published while leading, 1-256 bytes (default host:pid:random)")
      ->check(CLI::Validator(
          [](std::string& value) {
            const Status valid = ValidateCandidate(value);
            return valid.ok() ? std::string() : valid.message();
          },
          "VALUE"))
      ->type_name("VALUE");
  AddDuration(elect, "--ttl", &o.ttl, "Leadership lease, renewed every ttl/3 (default 30s)",
              kMinTtl, kMaxTtl);
  // Default: campaign with no end (RunCommand repeats kMaxWait waits).
  o.wait = kMaxWait;
  AddDuration(elect, "-w,--wait", &o.wait,
              "Give up (exit 1) if not leader within DUR (default: wait with no end)",
              milliseconds(0), kMaxWait);
  AddExitCode(elect, "--lost-exit-code", &o.lost_exit_code,
              "Exit code when leadership is lost while COMMAND runs (default 75)");
  AddDuration(elect, "--kill-grace", &o.kill_grace,
              "After SIGTERM on lost leadership, SIGKILL this much later (default 10s)",
              milliseconds(0), kMaxTtl);
  elect->add_flag("-v,--verbose", o.verbose, "Report on stderr what ordo does");
  elect->add_option("command", o.command, "The command and its arguments, after --")
      ->required()
      ->type_name("COMMAND…");
  // No positionals_at_end: NAME comes first, then flags; COMMAND follows "--".
}

void AddLeader(CLI::App& app, Command& c) {
  auto* leader = app.add_subcommand(
      "leader", "Print an election's leader as one JSON line; --watch: one line per change");
  leader->callback([&c] { c.kind = Command::Kind::kLeader; });
  LeaderOptions& o = c.leader;
  AddBackend(leader, &o.backend, "Backend URL (default: as for ordo run)");
  leader->add_option("name", o.name, "The election's name")->required()->type_name("NAME");
  leader->add_flag("--watch", o.watch,
                   "Keep printing: one line each time the term changes (a new leader, or "
                   "none: \"leader\":null)");
}

void AddLock(CLI::App& app, Command& c) {
  auto* lock = app.add_subcommand("lock", "Acquire, renew, release or inspect a lock (JSON out)");
  lock->require_subcommand(1);
  lock->footer(kLockExamples);
  LockOptions& o = c.lock;
  auto common = [&](CLI::App* sub, LockAction action) {
    sub->callback([&c, action] {
      c.kind = Command::Kind::kLock;
      c.lock.action = action;
    });
    sub->footer(kLockExamples);
    AddBackend(sub, &o.backend, "Backend URL (default: as for ordo run)");
    sub->add_option("name", o.name, "Lock name")->required()->type_name("NAME");
  };
  auto* acquire = lock->add_subcommand("acquire", "Take a lock and print the lease");
  common(acquire, LockAction::kAcquire);
  AddDuration(acquire, "--ttl", &o.ttl, "Lease time to live (default 30s)", kMinTtl, kMaxTtl);
  AddDuration(acquire, "-w,--wait", &o.wait, "Wait up to DUR for the lock (default: no wait)",
              milliseconds(0), kMaxWait);
  AddModeFlags(acquire, &o.mode);
  acquire->add_option("--owner", o.owner, "Owner id (default host:pid:random)")->type_name("ID");
  acquire->add_option("--limit", o.limit,
                      "Take one of at most N permits (a semaphore; default 1: a plain lock)")
      ->check(CLI::Range(1u, kMaxLimit))
      ->type_name("N");
  AddExitCode(acquire, "-E,--conflict-exit-code", &o.conflict_exit_code,
              "Exit code when the lock is held (default 1)");

  auto* renew = lock->add_subcommand("renew", "Extend a lease and print it");
  common(renew, LockAction::kRenew);
  renew->add_option("-t,--token", o.token, "The lease's fencing token")->required();
  AddDuration(renew, "--ttl", &o.ttl, "New time to live from now (default 30s)", kMinTtl,
              kMaxTtl);

  auto* release = lock->add_subcommand("release", "Release a lease");
  common(release, LockAction::kRelease);
  release->add_option("-t,--token", o.token, "The lease's fencing token")->required();

  auto* status = lock->add_subcommand("status", "Print the lock's holders and last token");
  common(status, LockAction::kStatus);

  auto* list = lock->add_subcommand("list", "A table of the locks and their holders");
  list->callback([&c] {
    c.kind = Command::Kind::kLock;
    c.lock.action = LockAction::kList;
  });
  list->footer(kLockExamples);
  AddBackend(list, &o.backend, "Backend URL (default: as for ordo run)");
  list->add_option("--prefix", o.prefix, "Only locks whose names start with P")->type_name("P");
  list->add_flag("--watch", o.watch, "Print again every second until interrupted");
  list->add_flag("--json", o.json, "JSON for scripts: {\"locks\":[…]} (one line per listing)");
}

void AddMigrate(CLI::App& app, Command& c) {
  auto* migrate = app.add_subcommand("migrate", "Create or upgrade a backend's schema");
  migrate->callback([&c] { c.kind = Command::Kind::kMigrate; });
  migrate->footer(kMigrateExamples);
  AddBackend(migrate, &c.migrate.backend, "Backend URL (default: as for ordo serve)");
}

void AddServe(CLI::App& app, Command& c) {
  auto* serve = app.add_subcommand("serve", "Run the HTTP API (REST, JSON)");
  serve->callback([&c] { c.kind = Command::Kind::kServe; });
  serve->footer(kServeExamples);
  http::ServeOptions& s = c.serve.serve;
  AddBackend(serve, &c.serve.backend, "Backend URL (default: SQLite, see below)");
  serve->add_option("--listen", s.listen, "HOST:PORT to listen on; port 0 picks a free one")
      ->capture_default_str()
      ->type_name("HOST:PORT");
  serve->add_option("--auth-file", s.auth_file, "Bearer tokens and their permissions (JSON)")
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  serve->add_option("--max-body", s.max_body, "Largest request body in bytes (413 above)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::numeric_limits<std::size_t>::max()))
      ->type_name("BYTES");
  serve->add_option("--threads", s.threads, "I/O threads (0: one per core)")
      ->check(CLI::Range(0, 1024))
      ->type_name("N");
  serve->add_option("--workers", s.workers, "Threads that make backend calls (0: 8)")
      ->check(CLI::Range(0, 1024))
      ->type_name("N");
  serve->add_option("--max-connections", s.max_connections,
                    "Open connections at once; beyond it 503 and close")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->type_name("N");
  AddDuration(serve, "--max-wait", &s.max_wait,
              "Largest wait_ms a client may ask for (default 60s)", milliseconds(0), kMaxWait);
  serve->add_option("--events-ring", s.events_ring,
                    "Recent events kept for /v1/events and /ui (0: off, no live page)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, http::ServeOptions::kMaxEventsRing))
      ->type_name("N");
}

constexpr char kFenceExamples[] = R"(
Makes your own tables refuse stale fencing tokens. Without --table: the table ordo_fences and
the function ordo_fence(resource, token) (PostgreSQL), which your transactions call first:
  BEGIN; SELECT ordo_fence('orders:42', :token); UPDATE orders …; COMMIT;
With --table T --column C: a trigger refusing writes that lower T.C or leave it NULL
(PostgreSQL: SQLSTATE OR409; SQLite: RAISE(ABORT, 'ordo: stale fencing token …')).
install checks the table and column, then applies everything in one transaction or nothing;
installing twice changes nothing. sql prints the same SQL and touches nothing.
Exit codes: 0 ok, 125 error (bad URL, missing table or column, not an integer column,
database unreachable).

Examples:
  ordo fence install --database 'postgresql://app@db.internal/shop'
  ordo fence install --database 'postgresql://app@db.internal/shop' --table orders --column token
  ordo fence install --database sqlite:///var/lib/app/app.db --table jobs --column fence
  ordo fence sql --database 'postgresql://app@db.internal/shop' --schema ordo > V42__fence.sql
)";

void AddFence(CLI::App& app, Command& c) {
  auto* fence = app.add_subcommand("fence", "Make your own database tables refuse stale tokens");
  fence->require_subcommand(1);
  fence->footer(kFenceExamples);
  FenceOptions& o = c.fence;
  auto common = [&](CLI::App* sub, FenceAction action) {
    sub->callback([&c, action] {
      c.kind = Command::Kind::kFence;
      c.fence.action = action;
    });
    sub->footer(kFenceExamples);
    sub->add_option("-d,--database", o.database,
                    "Your database: postgresql://user:password@host:port/db or sqlite:///path.db")
        ->required()
        ->type_name("URL");
    auto* table = sub->add_option("--table", o.table,
                                  "Fence the rows of this table (TABLE or SCHEMA.TABLE)")
                      ->type_name("T");
    auto* column = sub->add_option("--column", o.column,
                                   "The integer column of --table that holds the writer's token")
                       ->type_name("C");
    table->needs(column);
    column->needs(table);
    sub->add_option("--schema", o.schema,
                    "PostgreSQL: the schema for ordo_fences, ordo_fence() and the trigger "
                    "function (created if missing; default public)")
        ->type_name("S");
  };
  common(fence->add_subcommand("install", "Install the fence into the database"),
         FenceAction::kInstall);
  common(fence->add_subcommand("sql", "Print the SQL install would run; change nothing"),
         FenceAction::kSql);
}

}  // namespace

Command ParseCommandLine(int argc, const char* const* argv, std::ostream& out,
                         std::ostream& err) {
  Command c;
  CLI::App app(
      "ordo: locks with fencing tokens for cron jobs, scripts and services.\n"
      "One lock API over flock, fcntl, SQLite, PostgreSQL and an HTTP server.",
      "ordo");
  app.set_version_flag("-V,--version", std::string("ordo ") + ORDO_VERSION_STRING);
  app.require_subcommand(1);
  app.footer("\nRun 'ordo SUBCOMMAND --help' for a subcommand's flags and examples; "
             "'man ordo' for everything.");
  // A bad flag is reported like every other error of the subcommand: "ordo elect: --ttl: …".
  app.failure_message([](const CLI::App* root, const CLI::Error& e) {
    const auto subs = root->get_subcommands();
    const std::string prefix = subs.empty() ? "ordo: " : "ordo " + subs.back()->get_name() + ": ";
    return prefix + CLI::FailureMessage::simple(root, e);
  });
  AddRun(app, c);
  AddLock(app, c);
  AddElect(app, c);
  AddLeader(app, c);
  AddMigrate(app, c);
  AddServe(app, c);
  AddFence(app, c);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, out, err);
    c.kind = Command::Kind::kDone;
    c.exit_code = code == 0 ? kExitOk : kExitOrdoError;
    return c;
  }
  return c;
}

}  // namespace ordo::cli
