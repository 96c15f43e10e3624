// ordo-torture: fault-injection test of ordo's locks and fenced stores. See torture.h and the
// README's "Reliability" section.
//
//   ordo-torture --backend URL --mode MODE [--duration 5s] [--workers 6] [--ttl 300ms] …
//   ordo-torture check HISTORY.tsv…        re-check a kept history
//   ordo-torture worker …  /  nemesis …    (started by the orchestrator)
//   ordo-torture serve --backend URL --listen HOST:PORT   (the REST server, when there is no
//                                          `ordo` binary to run `ordo serve` with)
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdio>
#include <filesystem>

#include "checker.h"
#include "history.h"
#include "ordo/ordo.h"
#include "ordo_http/server.h"
#include "torture.h"

namespace {

using ordo::torture::Mode;

// CLI11 validator-free duration parsing through ordo's own "500ms" / "30s" rules.
bool ToDuration(const std::string& text, std::chrono::milliseconds& out) {
  auto d = ordo::ParseDuration(text);
  if (!d.ok()) {
    std::fprintf(stderr, "ordo-torture: %s\n", d.status().message().c_str());
    return false;
  }
  out = *d;
  return true;
}

bool ToMode(const std::string& text, Mode& out) {
  auto m = ordo::torture::ParseMode(text);
  if (!m) {
    std::fprintf(stderr,
                 "ordo-torture: unknown mode '%s' (fenced-reads, strict, "
                 "control-unfenced-writes, control-unfenced-reads, user-table, "
                 "control-user-table, control-unfenced-cas)\n",
                 text.c_str());
    return false;
  }
  out = *m;
  return true;
}

bool ToWorkload(const std::string& text, ordo::torture::Workload& out) {
  auto w = ordo::torture::ParseWorkload(text);
  if (!w) {
    std::fprintf(stderr, "ordo-torture: unknown workload '%s' (lock, semaphore, election)\n",
                 text.c_str());
    return false;
  }
  out = *w;
  return true;
}

std::string SelfPath(const char* argv0) {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
  return argv0;
}

int Check(const std::vector<std::string>& files) {
  auto history = ordo::torture::LoadHistory(files);
  auto r = ordo::torture::Check(history.events);
  std::printf("ops=%llu acked=%llu refused=%llu unknown=%llu violations=%llu\n",
              static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.acked),
              static_cast<unsigned long long>(r.refused),
              static_cast<unsigned long long>(r.unknown),
              static_cast<unsigned long long>(r.violations));
  for (const auto& e : r.examples) std::printf("  %s\n", e.c_str());
  return r.violations == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ordo-torture: a fault-injection test of ordo's locks and fenced stores"};
  app.require_subcommand(0, 1);

  ordo::torture::RunOptions run;
  std::vector<std::string> modes;
  std::string duration = "5s", ttl = "300ms", wait = "3s",
              max_sleep = "400ms";
  std::string workload = "lock";
  bool no_nemesis = false;
  app.add_option("--backend", run.backends,
                 "flock://, fcntl://, sqlite://[?strategy=], postgresql://[?strategy=], "
                 "http://[?replicas=N&standby=1[&pgbouncer=session]] (shorthands: the run "
                 "creates its own directory, database, servers, standby, PgBouncer), "
                 "or a full URL; repeat or separate with ',' for several")
      ->delimiter(',');
  app.add_option("--mode", modes,
                 "fenced-reads | strict | control-unfenced-writes | control-unfenced-reads | "
                 "user-table | control-user-table | control-unfenced-cas (election); "
                 "repeat or separate with ',' for several (each backend runs in each mode)")
      ->delimiter(',');
  app.add_option("--workload", workload,
                 "lock (default): a counter under one lock | semaphore: --permits counters, one "
                 "per slot | election: candidates, and the leader's fenced state transitions");
  app.add_option("--permits", run.permits, "semaphore workload: the limit (default 3)");
  app.add_option("--duration", duration, "how long the workers run (default 5s)");
  app.add_option("--workers", run.workers, "worker processes (default 6)");
  app.add_option("--ttl", ttl, "lease TTL (default 300ms)");
  app.add_option("--wait", wait, "how long an acquire waits (default 3s)");
  app.add_option("--max-sleep", max_sleep, "longest sleep between read and write (400ms)");
  app.add_option("--seed", run.seed, "random seed (default: random, printed)");
  app.add_option("--history-dir", run.history_dir, "keep the history here");
  app.add_flag("--no-nemesis", no_nemesis, "inject no faults");
  app.add_option("--ordo", run.ordo_binary,
                 "the ordo binary whose `serve` fronts http:// runs (default: the `ordo` beside "
                 "this binary, else the one built with this tree, else this binary's own `serve`)");
  app.add_option("--server-strategy", run.server_strategy,
                 "PostgreSQL strategy behind an http:// run (default cas)");

  auto* worker_cmd = app.add_subcommand("worker", "one worker (started by the orchestrator)");
  ordo::torture::WorkerOptions worker;
  std::string worker_mode;
  std::string worker_ttl = "300ms", worker_wait = "3s", worker_sleep = "400ms";
  worker_cmd->add_option("--backend", worker.backend)->required();
  worker_cmd->add_option("--mode", worker_mode)->required();
  worker_cmd->add_option("--lock", worker.lock)->required();
  worker_cmd->add_option("--key", worker.key)->required();
  worker_cmd->add_option("--ttl", worker_ttl);
  worker_cmd->add_option("--wait", worker_wait);
  worker_cmd->add_option("--max-sleep", worker_sleep);
  worker_cmd->add_option("--history", worker.history)->required();
  worker_cmd->add_option("--name", worker.name)->required();
  worker_cmd->add_option("--seed", worker.seed);
  worker_cmd->add_option("--user-db", worker.user_db);
  std::string worker_workload = "lock";
  worker_cmd->add_option("--workload", worker_workload);
  worker_cmd->add_option("--permits", worker.permits);
  worker_cmd->add_option("--leader-file", worker.leader_file);

  auto* nemesis_cmd = app.add_subcommand("nemesis", "the fault injector");
  ordo::torture::NemesisOptions nemesis;
  std::string nemesis_ttl = "300ms";
  nemesis_cmd->add_option("--control-fd", nemesis.control_fd)->required();
  nemesis_cmd->add_option("--history", nemesis.history)->required();
  nemesis_cmd->add_option("--seed", nemesis.seed);
  nemesis_cmd->add_option("--ttl", nemesis_ttl);
  nemesis_cmd->add_flag("--restart-db", nemesis.restart_db);
  nemesis_cmd->add_flag("--kill-server", nemesis.kill_server);
  nemesis_cmd->add_option("--leader-file", nemesis.leader_file);
  nemesis_cmd->add_flag("--database-first", nemesis.database_first);

  // What `ordo serve` runs, for builds without the ordo binary.
  auto* serve_cmd = app.add_subcommand("serve", "ordo::http::RunServer, as `ordo serve`");
  ordo::http::ServeOptions serve;
  serve_cmd->add_option("--backend", serve.backend_url)->required();
  serve_cmd->add_option("--listen", serve.listen);

  auto* check_cmd = app.add_subcommand("check", "check kept history files");
  std::vector<std::string> files;
  check_cmd->add_option("files", files)->required();

  CLI11_PARSE(app, argc, argv);

  if (*worker_cmd) {
    if (!ToWorkload(worker_workload, worker.workload) || !ToMode(worker_mode, worker.mode) ||
        !ToDuration(worker_ttl, worker.ttl) ||
        !ToDuration(worker_wait, worker.wait) || !ToDuration(worker_sleep, worker.max_sleep)) {
      return 2;
    }
    return ordo::torture::RunWorker(worker);
  }
  if (*nemesis_cmd) {
    if (!ToDuration(nemesis_ttl, nemesis.ttl)) return 2;
    return ordo::torture::RunNemesis(nemesis);
  }
  if (*check_cmd) return Check(files);
  if (*serve_cmd) return ordo::http::RunServer(serve);

  if (run.backends.empty()) {
    std::fprintf(stderr, "ordo-torture: --backend is required\n%s", app.help().c_str());
    return 2;
  }
  // The ',' delimiter also splits a multi-host URL (etcd://h1:p1,h2:p2): a piece that is no
  // URL of its own ("h2:p2": no "://" and not a bare "scheme:") belongs to the one before it.
  {
    std::vector<std::string> joined;
    for (auto& piece : run.backends) {
      const bool own = piece.find("://") != std::string::npos ||
                       (!piece.empty() && piece.back() == ':');
      if (!own && !joined.empty()) {
        joined.back() += "," + piece;
      } else {
        joined.push_back(std::move(piece));
      }
    }
    run.backends = std::move(joined);
  }
  if (!ToWorkload(workload, run.workload)) return 2;
  if (run.permits < 1 || run.permits > ordo::kMaxLimit) {
    std::fprintf(stderr, "ordo-torture: --permits must be 1..%u\n",
                 static_cast<unsigned>(ordo::kMaxLimit));
    return 2;
  }
  if (modes.empty()) modes = {"fenced-reads"};
  for (const auto& m : modes) {
    Mode parsed;
    if (!ToMode(m, parsed)) return 2;
    std::string why;
    if (!ordo::torture::ModeFits(run.workload, parsed, &why)) {
      std::fprintf(stderr, "ordo-torture: %s\n", why.c_str());
      return 2;
    }
    run.modes.push_back(parsed);
  }
  if (!ToDuration(duration, run.duration) ||
      !ToDuration(ttl, run.ttl) || !ToDuration(wait, run.wait) ||
      !ToDuration(max_sleep, run.max_sleep)) {
    return 2;
  }
  run.nemesis = !no_nemesis;
  run.self = SelfPath(argv[0]);
  // Installed, `ordo` sits beside this binary; in the build tree it is the one built with it.
  if (run.ordo_binary.empty()) {
    const std::string beside =
        std::filesystem::path(run.self).parent_path().append("ordo").string();
    if (access(beside.c_str(), X_OK) == 0) run.ordo_binary = beside;
  }
#ifdef ORDO_BINARY
  if (run.ordo_binary.empty() && access(ORDO_BINARY, X_OK) == 0) run.ordo_binary = ORDO_BINARY;
#endif
  return ordo::torture::RunTorture(run);
}
