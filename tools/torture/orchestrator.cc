// The orchestrator: sets the backend up, starts workers and the nemesis, restarts what the
// nemesis kills, stops everything, reads the final state and runs the checker.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "checker.h"
#include "history.h"
#include "ordo/ordo.h"
#include "pg_cluster.h"
#include "pgbouncer.h"
#include "subprocess.h"
#include "torture.h"

namespace ordo::torture {
namespace {

using testing::OpenPidfd;
using testing::ReceiveWithFd;
using testing::SendWithFd;
using testing::SpawnLogged;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A run is extended until it has at least this many acknowledged writes.
constexpr std::uint64_t kEnoughAcked = 5;

std::string Ms(milliseconds d) { return std::to_string(d.count()) + "ms"; }

std::string SchemeOf(std::string_view url) {
  const auto colon = url.find(':');
  return std::string(url.substr(0, colon == std::string_view::npos ? 0 : colon));
}

// "flock://" and "sqlite://?strategy=cas" are shorthands: the run makes its own directory or
// database file. A URL with a path or host is used as given.
bool IsShorthand(std::string_view url) {
  const std::string scheme = SchemeOf(url);
  std::string_view rest = url.substr(scheme.size() + 1);
  if (rest.starts_with("//")) rest.remove_prefix(2);
  return rest.empty() || rest.front() == '?';
}

std::string QueryOf(std::string_view url) {
  const auto q = url.find('?');
  return q == std::string_view::npos ? std::string() : std::string(url.substr(q));
}

using Cluster = ordo::testing::PgCluster;

// What the runs of one invocation share: the PostgreSQL cluster, started on first need.
struct Shared {
  std::unique_ptr<Cluster> pg;
};

// One run: one backend, one mode, one report line.
class Orchestrator {
 public:
  Orchestrator(const RunOptions& o, std::string backend, Mode mode, int run, Shared& shared)
      : o_(o), backend_(std::move(backend)), mode_(mode), run_(run), shared_(shared) {
    seed_ = o.seed != 0 ? o.seed + static_cast<std::uint64_t>(run)
                        : std::random_device{}() | 1;
    rng_.seed(seed_);
  }

  ~Orchestrator() {
    for (auto& w : workers_) {
      if (w.pidfd >= 0) close(w.pidfd);
    }
    if (control_ >= 0) close(control_);
    if (sigfd_ >= 0) close(sigfd_);
  }

  int Execute() {
    const auto started = Clock::now();
    if (!Prepare()) return 2;
    const auto prepared = Clock::now();
    std::fprintf(stderr, "ordo-torture: backend=%s workload=%s mode=%s seed=%llu history=%s\n",
                 Reported().c_str(), std::string(WorkloadName(o_.workload)).c_str(),
                 std::string(ModeName(mode_)).c_str(),
                 static_cast<unsigned long long>(seed_), dir_.c_str());
    main_history_ = std::make_unique<HistoryWriter>(dir_ + "/main.tsv", "main");
    BlockSignals();
    if (o_.nemesis) SpawnNemesis();
    workers_.resize(static_cast<std::size_t>(o_.workers));
    for (int slot = 0; slot < o_.workers; ++slot) SpawnWorker(slot);
    // The run lasts --duration, and is extended (up to three times that) while it has too few
    // acknowledged writes to judge or, in a control mode, has not yet shown a violation: an
    // outage can eat much of a short run, and the control must prove the test has teeth.
    const auto limit = prepared + 3 * o_.duration;
    bool interrupted = !Loop(prepared + o_.duration);
    while (!interrupted && Clock::now() < limit && !Conclusive()) {
      interrupted = !Loop(std::min(Clock::now() + milliseconds(500), limit));
    }
    const auto ran = Clock::now();
    Stop();
    const auto finals = ReadFinals();
    const auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
    std::fprintf(stderr, "ordo-torture: setup %.1fs, run %.1fs, stop and final read %.1fs\n",
                 secs(prepared - started), secs(ran - prepared), secs(Clock::now() - ran));
    if (finals) {
      for (const auto& [key, value] : *finals) {
        main_history_->Note(Fn::kFinal, Phase::kOk, value, key);
      }
    } else {
      main_history_->Note(Fn::kFinal, Phase::kFail, -1, "final state unreadable");
    }
    main_history_.reset();
    return Report(interrupted);
  }

 private:
  struct WorkerSlot {
    pid_t pid = -1;
    int pidfd = -1;
    int incarnation = 0;
  };

  // The backend as the report names it: the URL the workers open, or for several replicas
  // the shorthand that made them.
  std::string Reported() const {
    return worker_urls_.size() > 1 || standby_ != nullptr || failed_over_ ? backend_
                                                                          : Masked(worker_url_);
  }

  static std::string Masked(const std::string& url) {
    auto parsed = ParseBackendUrl(url);
    return parsed.ok() ? parsed->Masked() : url;
  }

  bool Prepare() {
    if (!o_.history_dir.empty()) {
      dir_ = o_.history_dir;
      std::error_code ec;
      std::filesystem::create_directories(dir_, ec);
      keep_dir_ = true;
    } else {
      const char* base = std::getenv("TMPDIR");
      std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                         "/ordo-torture-XXXXXX";
      if (mkdtemp(tmpl.data()) == nullptr) return Fail("mkdtemp failed");
      dir_ = tmpl;
    }
    const std::string scheme = SchemeOf(backend_);
    if (IsUserTable(mode_) && !(IsShorthand(backend_) && (scheme == "postgresql" ||
                                                          scheme == "postgres"))) {
      return Fail("the user-table modes need the postgresql:// shorthand: the run makes the "
                  "user's database in its own cluster");
    }
    // Runs of one invocation may share a database: each has its own lock and key.
    const bool election = o_.workload == Workload::kElection;
    lock_ = (election ? "election-" : "torture-") + std::to_string(run_);
    key_ = (election ? "state-" : "counter-") + std::to_string(run_);
    if (!IsShorthand(backend_)) {
      // Someone else's backend: fresh names so earlier runs do not interfere.
      lock_ += "-" + std::to_string(getpid()) + "-" + std::to_string(seed_ % 100000);
      key_ += "-" + std::to_string(getpid()) + "-" + std::to_string(seed_ % 100000);
      worker_url_ = direct_url_ = backend_;
      return true;
    }
    if (scheme == "flock" || scheme == "fcntl") {
      const std::string locks = dir_ + "/locks";
      mkdir(locks.c_str(), 0755);
      worker_url_ = direct_url_ = scheme + "://" + locks + QueryOf(backend_);
      return true;
    }
    if (scheme == "sqlite") {
      worker_url_ = direct_url_ = "sqlite://" + dir_ + "/torture.db" + QueryOf(backend_);
      return true;
    }
    if (scheme == "postgresql" || scheme == "postgres" || scheme == "http") {
      return PrepareDatabase(scheme);
    }
    return Fail("ordo-torture cannot set up a " + scheme + ": backend by itself; give a full URL");
  }

  bool PrepareDatabase(const std::string& scheme);
  bool PrepareReplicated(int replicas, const std::string& pgbouncer);
  bool StartServers(int replicas);

  bool Fail(const std::string& why) {
    std::fprintf(stderr, "ordo-torture: %s\n", why.c_str());
    return false;
  }

  void BlockSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    sigfd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
  }

  void SpawnNemesis() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return;
    std::vector<std::string> argv = {o_.self, "nemesis", "--control-fd", "3",
                                     "--history", dir_ + "/nemesis.tsv",
                                     "--seed", std::to_string(seed_ + 1),
                                     "--ttl", Ms(o_.ttl)};
    for (const auto& a : nemesis_args_) argv.push_back(a);
    if (o_.workload == Workload::kElection) {
      argv.insert(argv.end(), {"--leader-file", LeaderFile()});
    }
    nemesis_pid_ = SpawnLogged(argv, sv[1], dir_ + "/processes.log");
    close(sv[1]);
    control_ = sv[0];
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i].pid > 0) SendTarget("server", ServerName(i), servers_[i].pid);
    }
  }

  void SendTarget(const std::string& kind, const std::string& name, pid_t pid) {
    if (control_ < 0) return;
    const int pidfd = OpenPidfd(pid);
    if (pidfd < 0) return;
    SendWithFd(control_, kind + " " + name, pidfd);
    close(pidfd);
  }

  void SpawnWorker(int slot) {
    WorkerSlot& w = workers_[static_cast<std::size_t>(slot)];
    ++w.incarnation;
    const std::string name = "w" + std::to_string(slot) + "." + std::to_string(w.incarnation);
    std::vector<std::string> argv = {
        o_.self, "worker", "--backend",
        worker_urls_.empty() ? worker_url_
                             : worker_urls_[static_cast<std::size_t>(slot) % worker_urls_.size()],
        "--mode", std::string(ModeName(mode_)),
        "--lock", lock_, "--key", key_, "--ttl", Ms(o_.ttl), "--wait", Ms(o_.wait),
        "--max-sleep", Ms(o_.max_sleep), "--history", dir_ + "/" + name + ".tsv",
        "--name", name, "--seed", std::to_string(rng_())};
    if (!user_db_.empty()) argv.insert(argv.end(), {"--user-db", user_db_});
    argv.insert(argv.end(), {"--workload", std::string(WorkloadName(o_.workload)), "--permits",
                             std::to_string(o_.permits)});
    if (o_.workload == Workload::kElection) {
      argv.insert(argv.end(), {"--leader-file", LeaderFile()});
    }
    w.pid = SpawnLogged(argv, -1, dir_ + "/processes.log");
    if (w.pid < 0) return;
    main_history_->Note(Fn::kSpawn, Phase::kOk, w.pid, name);
    SendTarget("worker", name, w.pid);
  }

  // Replica i of `ordo serve` (http runs have one; --backend 'http://?replicas=N' more).
  bool SpawnServer(std::size_t i);
  std::string ServerName(std::size_t i) const {
    return "s" + std::to_string(i) + "." + std::to_string(servers_[i].incarnation);
  }

  std::string LeaderFile() const { return dir_ + "/leader"; }

  // Runs until `deadline`; false when interrupted by SIGINT/SIGTERM.
  bool Loop(Clock::time_point deadline) {
    while (true) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return true;
      pollfd p[2] = {{sigfd_, POLLIN, 0}, {control_, POLLIN, 0}};
      poll(p, control_ >= 0 ? 2 : 1, static_cast<int>(left.count()));
      signalfd_siginfo info{};
      bool interrupted = false;
      while (read(sigfd_, &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGINT || info.ssi_signo == SIGTERM) interrupted = true;
      }
      Reap();
      if (interrupted) return false;
      if (control_ >= 0 && (p[1].revents & (POLLIN | POLLHUP)) != 0) HandleNemesisRequest();
    }
  }

  // "restart-db <down_ms>": crash the database, keep it down, start it, answer "db ok|fail".
  void HandleNemesisRequest() {
    int fd = -1;
    auto msg = ReceiveWithFd(control_, &fd);
    if (fd >= 0) close(fd);
    if (!msg) {  // the nemesis died: go on without faults
      close(control_);
      control_ = -1;
      return;
    }
    long down_ms = 0;
    Cluster* pg = standby_ != nullptr ? primary_.get() : shared_.pg.get();
    if (pg == nullptr || std::sscanf(msg->c_str(), "restart-db %ld", &down_ms) != 1) return;
    if (standby_ != nullptr && !failed_over_) {
      Failover(down_ms);
      return;
    }
    bool ok = true;
    const auto begun = Clock::now();
    try {
      pg->StopImmediate();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ordo-torture: database stop failed: %s\n", e.what());
      ok = false;
    }
    WaitUntil([] { return false; }, milliseconds(down_ms));  // reaping and respawning meanwhile
    try {
      pg->Start();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ordo-torture: database start failed: %s\n", e.what());
      ok = false;
    }
    std::fprintf(stderr, "ordo-torture: database restart (down %ldms) took %.1fs\n", down_ms,
                 std::chrono::duration<double>(Clock::now() - begun).count());
    SendWithFd(control_, ok ? "db ok" : "db fail", -1);
  }

  // With a standby, the first database fault is a failover: the primary crashes and, after
  // `down_ms`, the synchronous standby is promoted; the old primary stays down (two primaries
  // would be a split brain). Later faults crash-restart the new primary.
  void Failover(long down_ms) {
    bool ok = true;
    const auto begun = Clock::now();
    try {
      primary_->StopImmediate();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ordo-torture: primary stop failed: %s\n", e.what());
      ok = false;
    }
    WaitUntil([] { return false; }, milliseconds(down_ms));
    try {
      standby_->Promote();
      // PgBouncer does not follow a failover: re-point it, as failover tooling would.
      if (bouncer_ != nullptr) bouncer_->Retarget(*standby_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ordo-torture: promotion failed: %s\n", e.what());
      ok = false;
    }
    failed_over_ = true;
    primary_.swap(standby_);  // the promoted standby is the primary from now on
    std::fprintf(stderr, "ordo-torture: failover (primary down %ldms, then promotion) took %.1fs\n",
                 down_ms, std::chrono::duration<double>(Clock::now() - begun).count());
    SendWithFd(control_, ok ? "db ok" : "db fail", -1);
  }

  void Reap() {
    auto reaped = [](pid_t pid) {
      int status = 0;
      return pid > 0 && waitpid(pid, &status, WNOHANG) == pid;
    };
    if (reaped(nemesis_pid_)) nemesis_pid_ = -1;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (!reaped(servers_[i].pid)) continue;
      servers_[i].pid = -1;
      if (!stopping_) SpawnServer(i);
    }
    for (std::size_t slot = 0; slot < workers_.size(); ++slot) {
      if (!reaped(workers_[slot].pid)) continue;
      workers_[slot].pid = -1;
      if (!stopping_) SpawnWorker(static_cast<int>(slot));
    }
  }

  // Waits until `done()` or the timeout, reaping children meanwhile.
  template <typename Pred>
  bool WaitUntil(Pred done, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{sigfd_, POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
      signalfd_siginfo info{};
      while (read(sigfd_, &info, sizeof(info)) == sizeof(info)) {
      }
      Reap();
    }
    return true;
  }

  void Stop() {
    stopping_ = true;
    // The nemesis resumes what it paused and starts the database again before it exits.
    if (control_ >= 0) {
      close(control_);
      control_ = -1;
    }
    if (nemesis_pid_ > 0 && !WaitUntil([&] { return nemesis_pid_ < 0; }, milliseconds(60'000))) {
      kill(nemesis_pid_, SIGKILL);
    }
    // Workers finish the step they are in, release and exit; those still busy after a while
    // are killed (their last operation is then of unknown outcome, as the checker assumes).
    for (auto& w : workers_) {
      if (w.pid > 0) {
        kill(w.pid, SIGCONT);
        kill(w.pid, SIGTERM);
      }
    }
    auto all_gone = [&] {
      for (auto& w : workers_) {
        if (w.pid > 0) return false;
      }
      return true;
    };
    if (!WaitUntil(all_gone, milliseconds(1500))) {
      for (auto& w : workers_) {
        if (w.pid > 0) kill(w.pid, SIGKILL);
      }
      WaitUntil(all_gone, milliseconds(10'000));
    }
    // A server that is still answering a killed worker's request could apply it after the
    // final read; stop it first.
    auto servers_gone = [&] {
      for (const auto& server : servers_) {
        if (server.pid > 0) return false;
      }
      return true;
    };
    for (const auto& server : servers_) {
      if (server.pid > 0) kill(server.pid, SIGTERM);
    }
    if (!WaitUntil(servers_gone, milliseconds(5000))) {
      for (const auto& server : servers_) {
        if (server.pid > 0) kill(server.pid, SIGKILL);
      }
      WaitUntil(servers_gone, milliseconds(5000));
    }
  }

  // The final state of each key the run used, as the store holds it after the run, read
  // directly from the backend (for http runs: from the PostgreSQL behind the server): the
  // counter (lock), each slot's counter (semaphore), the state object's version (election).
  std::optional<std::map<std::string, std::int64_t>> ReadFinals() {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    std::string last_error;
    while (!user_db_.empty() && Clock::now() < deadline) {
      if (auto v = ReadUserCounter(user_db_, &last_error)) {
        return std::map<std::string, std::int64_t>{{key_, *v}};
      }
      std::this_thread::sleep_for(milliseconds(200));  // the database is coming back up
    }
    std::vector<std::string> keys = {key_};
    if (o_.workload == Workload::kSemaphore) {
      keys.clear();
      for (std::uint32_t slot = 0; slot < o_.permits; ++slot) {
        keys.push_back(SlotKey(key_, slot));
      }
    }
    while (user_db_.empty() && Clock::now() < deadline) {
      auto locker = Open(direct_url_);
      if (!locker.ok()) {
        last_error = locker.status().ToString();
        std::this_thread::sleep_for(milliseconds(200));  // the backend is coming back up
        continue;
      }
      std::map<std::string, std::int64_t> finals;
      bool unreadable = false;
      for (const std::string& key : keys) {
        auto value = ReadFinal(**locker, key, &last_error);
        if (!value) {
          unreadable = true;
          break;
        }
        finals[key] = *value;
      }
      if (!unreadable) return finals;
      if (last_error.starts_with("unparsable")) break;
      std::this_thread::sleep_for(milliseconds(200));
    }
    std::fprintf(stderr, "ordo-torture: cannot read the final state: %s\n", last_error.c_str());
    return std::nullopt;
  }

  std::optional<std::int64_t> ReadFinal(Locker& locker, const std::string& key,
                                        std::string* error) {
    if (o_.workload == Workload::kElection) {
      auto state = locker.objects().Get(key);
      if (state.ok()) return static_cast<std::int64_t>(state->version);
      if (state.status().code() == StatusCode::kNotFound) return 0;
      *error = state.status().ToString();
      return std::nullopt;
    }
    auto value = locker.fenced().Read(key);
    if (value.ok()) {
      std::int64_t v = 0;
      const std::string& d = value->data;
      const auto [end, ec] = std::from_chars(d.data(), d.data() + d.size(), v);
      if (ec == std::errc() && end == d.data() + d.size()) return v;
      *error = "unparsable counter '" + d + "' of " + key;
      return std::nullopt;
    }
    if (value.status().code() == StatusCode::kNotFound) return 0;
    *error = value.status().ToString();
    return std::nullopt;
  }

  LoadedHistory LoadRunHistory() {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().extension() == ".tsv" && entry.path().filename() != "history.tsv") {
        files.push_back(entry.path().string());
      }
    }
    return LoadHistory(files);
  }

  // Whether the history so far (no final state yet) suffices: enough acknowledged writes, and
  // in a control mode a violation that needs no final state (a lost update, a stale write).
  bool Conclusive() {
    const CheckResult r = Check(LoadRunHistory().events);
    const auto no_final = r.by_kind.contains("no-final") ? r.by_kind.at("no-final") : 0;
    return r.acked >= kEnoughAcked && (!IsControl(mode_) || r.violations > no_final);
  }

  int Report(bool interrupted) {
    LoadedHistory history = LoadRunHistory();
    {
      FILE* merged = std::fopen((dir_ + "/history.tsv").c_str(), "w");
      if (merged != nullptr) {
        for (const Event& e : history.events) std::fputs(FormatEvent(e).c_str(), merged);
        std::fclose(merged);
      }
    }
    const CheckResult r = Check(history.events);
    std::printf(
        "torture backend=%s mode=%s ops=%llu acked=%llu refused=%llu pauses=%llu kills=%llu "
        "restarts=%llu violations=%llu\n",
        Reported().c_str(), std::string(ModeName(mode_)).c_str(),
        static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.acked),
        static_cast<unsigned long long>(r.refused), static_cast<unsigned long long>(r.pauses),
        static_cast<unsigned long long>(r.kills), static_cast<unsigned long long>(r.restarts),
        static_cast<unsigned long long>(r.violations));
    std::fflush(stdout);
    std::fprintf(stderr,
                 "ordo-torture: grants=%llu unknown-writes=%llu reads-refused=%llu final=%lld "
                 "malformed-lines=%zu\n",
                 static_cast<unsigned long long>(r.grants),
                 static_cast<unsigned long long>(r.unknown),
                 static_cast<unsigned long long>(r.reads_refused),
                 static_cast<long long>(r.final_value.value_or(-1)), history.malformed);
    for (const auto& [kind, n] : r.by_kind) {
      std::fprintf(stderr, "ordo-torture: %llu x %s\n", static_cast<unsigned long long>(n),
                   kind.c_str());
    }
    for (const auto& example : r.examples) {
      std::fprintf(stderr, "ordo-torture:   %s\n", example.c_str());
    }
    bool passed = IsControl(mode_) ? r.violations > 0 : r.violations == 0;
    if (IsControl(mode_) && !passed) {
      std::fprintf(stderr,
                   "ordo-torture: FAIL: a control run found no violation, so this run could not "
                   "have caught one either\n");
    }
    if (r.acked == 0) {
      std::fprintf(stderr, "ordo-torture: FAIL: no write was acknowledged; nothing was tested\n");
      passed = false;
    }
    if (!r.final_value) passed = false;
    if (interrupted) passed = false;
    if (passed && !keep_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    } else {
      std::fprintf(stderr, "ordo-torture: history kept in %s/history.tsv\n", dir_.c_str());
    }
    return passed ? 0 : 1;
  }

  const RunOptions& o_;
  const std::string backend_;
  const Mode mode_;
  const int run_;
  Shared& shared_;
  std::uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::string dir_;
  bool keep_dir_ = false;
  std::string lock_;
  std::string key_;
  std::string worker_url_;  // what the workers open
  std::string direct_url_;  // where the final state is read
  std::string user_db_;     // user-table modes: the user's database (conninfo)
  std::vector<std::string> nemesis_args_;
  std::unique_ptr<HistoryWriter> main_history_;
  std::vector<WorkerSlot> workers_;
  pid_t nemesis_pid_ = -1;
  int control_ = -1;
  int sigfd_ = -1;
  bool stopping_ = false;
  struct ServerSlot {
    pid_t pid = -1;
    int incarnation = 0;
    std::string listen;  // 127.0.0.1:<port>
  };
  std::vector<ServerSlot> servers_;
  std::vector<std::string> worker_urls_;  // per worker slot (round robin); empty: worker_url_
  // 'http://?standby=1' runs: their own primary and synchronous standby (not shared: the run
  // fails over).
  std::unique_ptr<Cluster> primary_;
  std::unique_ptr<Cluster> standby_;
  // '&pgbouncer=session': the replicas reach the primary through it (destroyed first).
  std::unique_ptr<ordo::testing::PgBouncer> bouncer_;
  bool failed_over_ = false;
};

bool Orchestrator::PrepareDatabase(const std::string& scheme) {
  // http://?replicas=N&standby=1: N `ordo serve` replicas over a primary with a synchronous
  // streaming standby, on a multi-host URL that follows the primary.
  auto shorthand = ParseBackendUrl(backend_);
  const std::string replicas_text = shorthand.ok() ? shorthand->QueryOr("replicas", "1") : "1";
  const bool with_standby = shorthand.ok() && shorthand->QueryOr("standby", "0") == "1";
  const std::string pgbouncer = shorthand.ok() ? shorthand->QueryOr("pgbouncer", "") : "";
  int replicas = 0;
  const auto [end, ec] = std::from_chars(replicas_text.data(),
                                         replicas_text.data() + replicas_text.size(), replicas);
  if (ec != std::errc() || end != replicas_text.data() + replicas_text.size() || replicas < 1 ||
      replicas > 8) {
    return Fail("replicas=" + replicas_text + " in " + backend_ + ": expected 1..8");
  }
  if (scheme != "http" && (replicas != 1 || with_standby)) {
    return Fail("replicas= and standby= are for the http:// shorthand: " + backend_);
  }
  if (!pgbouncer.empty() && pgbouncer != "session") {
    return Fail("pgbouncer=" + pgbouncer + " in " + backend_ +
                ": only pgbouncer=session (LISTEN and for-update need session pooling)");
  }
  if (!pgbouncer.empty() && !with_standby) {
    return Fail("pgbouncer=session in " + backend_ + " needs standby=1");
  }
  if (with_standby) return PrepareReplicated(replicas, pgbouncer);
  if (shared_.pg == nullptr) {
    try {
      shared_.pg = std::make_unique<ordo::testing::PgCluster>();
    } catch (const std::exception& e) {
      return Fail(std::string("cannot start PostgreSQL: ") + e.what());
    }
    try {
      // After a crash PostgreSQL fsyncs every file of the data directory before recovery:
      // seconds on a disk shared with builds, which would make each restart an outage of that
      // length. syncfs(2) makes the same guarantee in one call. fsync itself stays on.
      shared_.pg->Psql("ALTER SYSTEM SET recovery_init_sync_method = 'syncfs'");
      shared_.pg->Psql("SELECT pg_reload_conf()");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ordo-torture: keeping the default recovery sync: %s\n", e.what());
    }
  }
  Cluster& pg = *shared_.pg;
  nemesis_args_ = {"--restart-db"};
  if (scheme != "http") {
    auto url = ParseBackendUrl(backend_);
    const std::string strategy = url.ok() ? url->QueryOr("strategy", "cas") : "cas";
    worker_url_ = direct_url_ = pg.Url(strategy);
    if (IsUserTable(mode_)) {
      try {
        user_db_ = PrepareUserTable(pg, run_);
      } catch (const std::exception& e) {
        return Fail(std::string("cannot prepare the user's database: ") + e.what());
      }
    }
    return true;
  }
  // http://: an `ordo serve` in front of the cluster; the nemesis kills it too.
  direct_url_ = pg.Url(o_.server_strategy);
  return StartServers(replicas);
}

bool Orchestrator::PrepareReplicated(int replicas, const std::string& pgbouncer) {
  try {
    primary_ = std::make_unique<Cluster>();
    standby_ = Cluster::StandbyOf(*primary_, "ordo_torture_standby");
    primary_->MakeSynchronous("ordo_torture_standby");
    if (!pgbouncer.empty()) {
      bouncer_ = std::make_unique<ordo::testing::PgBouncer>(*primary_, pgbouncer);
    }
  } catch (const std::exception& e) {
    return Fail(std::string("cannot start PostgreSQL with a standby: ") + e.what());
  }
  nemesis_args_ = {"--restart-db", "--database-first"};
  if (bouncer_ != nullptr) {
    // One PgBouncer in session pooling in front of the primary, re-pointed at the standby when
    // it is promoted.
    direct_url_ = bouncer_->Url(*primary_, "strategy=" + o_.server_strategy +
                                               "&connect_timeout=2&statement_timeout=5s");
    return StartServers(replicas);
  }
  // libpq's multi-host form: whichever host accepts writes. connect_timeout bounds a dead host's
  // connect, statement_timeout a call stuck on a primary that went away.
  direct_url_ = "postgresql://ordo:" + primary_->password() + "@127.0.0.1:" +
                std::to_string(primary_->port()) + ",127.0.0.1:" +
                std::to_string(standby_->port()) + "/ordo_test?strategy=" + o_.server_strategy +
                "&target_session_attrs=read-write&connect_timeout=2&statement_timeout=5s";
  return StartServers(replicas);
}

// The `ordo serve` replicas in front of direct_url_; the nemesis kills them too. Workers are
// spread over them round robin.
bool Orchestrator::StartServers(int replicas) {
  nemesis_args_.push_back("--kill-server");
  servers_.resize(static_cast<std::size_t>(replicas));
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    servers_[i].listen = "127.0.0.1:" + std::to_string(ordo::testing::FreeLoopbackPort());
    worker_urls_.push_back("http://" + servers_[i].listen);
    if (!SpawnServer(i)) return Fail("cannot start " + o_.ordo_binary);
  }
  worker_url_ = worker_urls_.front();
  // Wait (bounded) until each answers, so that the run does not start with an outage.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (const std::string& url : worker_urls_) {
    while (true) {
      auto locker = Open(url);
      if (locker.ok() && (*locker)->Ping().ok()) break;
      if (Clock::now() > deadline) {
        return Fail("ordo serve on " + url + " did not become ready; see " + dir_ +
                    "/processes.log");
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  return true;
}

bool Orchestrator::SpawnServer(std::size_t i) {
  ServerSlot& server = servers_[i];
  ++server.incarnation;
  // `ordo serve` when it is built; otherwise this binary's `serve`, which runs the same
  // ordo::http::RunServer.
  std::vector<std::string> argv = {o_.ordo_binary.empty() ? o_.self : o_.ordo_binary, "serve",
                                   "--backend", direct_url_, "--listen", server.listen};
  server.pid = SpawnLogged(argv, -1, dir_ + "/processes.log");
  if (server.pid < 0) return false;
  if (main_history_) {
    main_history_->Note(Fn::kSpawn, Phase::kOk, server.pid, "server " + ServerName(i));
  }
  SendTarget("server", ServerName(i), server.pid);
  return true;
}

}  // namespace

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kFencedReads:
      return "fenced-reads";
    case Mode::kStrict:
      return "strict";
    case Mode::kControlUnfencedWrites:
      return "control-unfenced-writes";
    case Mode::kControlUnfencedReads:
      return "control-unfenced-reads";
    case Mode::kUserTable:
      return "user-table";
    case Mode::kControlUserTable:
      return "control-user-table";
    case Mode::kControlUnfencedCas:
      return "control-unfenced-cas";
  }
  return "?";
}

std::string_view WorkloadName(Workload workload) {
  switch (workload) {
    case Workload::kLock:
      return "lock";
    case Workload::kSemaphore:
      return "semaphore";
    case Workload::kElection:
      return "election";
  }
  return "?";
}

std::optional<Workload> ParseWorkload(std::string_view name) {
  for (Workload w : {Workload::kLock, Workload::kSemaphore, Workload::kElection}) {
    if (WorkloadName(w) == name) return w;
  }
  return std::nullopt;
}

bool ModeFits(Workload workload, Mode mode, std::string* why) {
  const bool cas = mode == Mode::kControlUnfencedCas;
  bool fits = true;
  switch (workload) {
    case Workload::kLock:
      fits = !cas;
      break;
    case Workload::kSemaphore:
      fits = !cas && !IsUserTable(mode);
      break;
    case Workload::kElection:
      fits = mode == Mode::kFencedReads || mode == Mode::kStrict || cas;
      break;
  }
  if (!fits) {
    *why = "mode " + std::string(ModeName(mode)) + " does not apply to the " +
           std::string(WorkloadName(workload)) + " workload (" +
           (workload == Workload::kElection
                ? "it takes fenced-reads, strict, control-unfenced-cas"
                : workload == Workload::kSemaphore
                      ? "it takes fenced-reads, strict, control-unfenced-writes, "
                        "control-unfenced-reads"
                      : "control-unfenced-cas is the election workload's") +
           ")";
  }
  return fits;
}

std::string SlotKey(std::string_view key, std::uint32_t slot) {
  return std::string(key) + ".slot-" + std::to_string(slot);
}

std::optional<Mode> ParseMode(std::string_view name) {
  for (Mode m : {Mode::kFencedReads, Mode::kStrict, Mode::kControlUnfencedWrites,
                 Mode::kControlUnfencedReads, Mode::kUserTable, Mode::kControlUserTable,
                 Mode::kControlUnfencedCas}) {
    if (ModeName(m) == name) return m;
  }
  return std::nullopt;
}

int RunTorture(const RunOptions& options) {
  Shared shared;
  int worst = 0;
  int run = 0;
  for (const std::string& backend : options.backends) {
    for (Mode mode : options.modes) {
      Orchestrator orchestrator(options, backend, mode, run++, shared);
      worst = std::max(worst, orchestrator.Execute());
    }
  }
  return worst;
}

}  // namespace ordo::torture
