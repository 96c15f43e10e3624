// The nemesis: one fault at a time, at random, until the orchestrator closes the control socket.
//
//   pause    SIGSTOP a random worker for 1.5–3 TTLs, then SIGCONT: its lease expires while it
//            cannot notice, the classic GC pause of Kleppmann's example.
//   kill     SIGKILL a random worker mid-operation; the orchestrator starts a replacement.
//   restart  `pg_ctl stop -m immediate` (a crash: no checkpoint, connections cut), then start:
//            the database must keep its tokens and lock table. On http runs it alternates
//            with SIGKILL of `ordo serve`, which the orchestrator restarts.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <vector>

#include "history.h"
#include "process.h"
#include "torture.h"

namespace ordo::torture {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Target {
  std::string name;
  int pidfd = -1;
};

class Nemesis {
 public:
  explicit Nemesis(const NemesisOptions& o)
      : o_(o), history_(o.history, "nemesis"), rng_(o.seed) {}

  ~Nemesis() {
    for (auto& [slot, t] : targets_) close(t.pidfd);
  }

  int Run() {
    // Give the workers a moment to start before the first fault.
    if (!Idle(milliseconds(300))) return Finish();
    while (true) {
      std::uniform_int_distribution<long> gap(100, 400);
      if (!Idle(milliseconds(gap(rng_)))) break;
      std::uniform_real_distribution<double> pick(0, 1);
      const double r = pick(rng_);
      const bool db = !o_.pg_ctl.empty();
      const bool big_fault_due = Clock::now() - last_big_fault_ > milliseconds(1500);
      if ((db || o_.kill_server) && big_fault_due && r < 0.3) {
        // On http runs alternate between the database and the server.
        const bool server = o_.kill_server && (!db || big_faults_ % 2 == 1);
        ++big_faults_;
        last_big_fault_ = Clock::now();
        if (server) {
          KillServer();
        } else if (!RestartDatabase()) {
          break;
        }
      } else if (r < 0.65) {
        if (!Pause()) break;
      } else {
        KillWorker();
      }
    }
    return Finish();
  }

 private:
  // Waits `d` while taking the orchestrator's updates. false when the orchestrator is done.
  bool Idle(milliseconds d) {
    const auto deadline = Clock::now() + d;
    while (true) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return true;
      pollfd p{o_.control_fd, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(left));
      if (r <= 0) continue;
      int fd = -1;
      auto msg = ReceiveWithFd(o_.control_fd, &fd);
      if (!msg) return false;
      std::istringstream in(*msg);
      std::string kind, name;
      in >> kind >> name;
      // Workers are keyed by slot ("w3" of "w3.2"): a replacement takes its slot.
      const std::string slot = kind == "server" ? "server" : name.substr(0, name.find('.'));
      auto& t = targets_[slot];
      if (t.pidfd >= 0) close(t.pidfd);
      t = {name, fd};
    }
  }

  std::vector<Target*> Workers() {
    std::vector<Target*> out;
    for (auto& [slot, t] : targets_) {
      if (slot != "server" && t.pidfd >= 0) out.push_back(&t);
    }
    return out;
  }

  Target* RandomWorker() {
    auto workers = Workers();
    if (workers.empty()) return nullptr;
    std::uniform_int_distribution<std::size_t> i(0, workers.size() - 1);
    return workers[i(rng_)];
  }

  bool Pause() {
    Target* t = RandomWorker();
    if (t == nullptr) return true;
    const std::string name = t->name;
    const int pidfd = t->pidfd;
    if (!SignalPidfd(pidfd, SIGSTOP)) return true;  // already gone
    history_.Note(Fn::kPause, Phase::kOk, -1, name);
    std::uniform_real_distribution<double> ttls(1.5, 3.0);
    const bool go_on = Idle(milliseconds(static_cast<long>(o_.ttl.count() * ttls(rng_))));
    // If the slot was refilled meanwhile, the process we stopped is dead (the orchestrator
    // replaces only reaped workers) and its pidfd closed.
    if (t->name == name) SignalPidfd(pidfd, SIGCONT);
    history_.Note(Fn::kResume, Phase::kOk, -1, name);
    return go_on;
  }

  void KillWorker() {
    Target* t = RandomWorker();
    if (t == nullptr) return;
    if (SignalPidfd(t->pidfd, SIGKILL)) history_.Note(Fn::kKill, Phase::kOk, -1, t->name);
  }

  void KillServer() {
    auto it = targets_.find("server");
    if (it == targets_.end() || it->second.pidfd < 0) return;
    if (SignalPidfd(it->second.pidfd, SIGKILL)) {
      history_.Note(Fn::kRestart, Phase::kOk, -1, "server " + it->second.name);
    }
  }

  std::vector<std::string> PgCtl(std::vector<std::string> args) {
    std::vector<std::string> argv;
    if (!o_.pg_user.empty()) argv = {"/usr/sbin/runuser", "-u", o_.pg_user, "--"};
    argv.push_back(o_.pg_ctl);
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  // false when the orchestrator finished while the database was down (it is started again
  // before returning in any case).
  bool RestartDatabase() {
    const int stopped = RunCommand(PgCtl({"stop", "-D", o_.pg_data, "-m", "immediate", "-w"}),
                                   o_.pg_log);
    if (stopped != 0) {
      history_.Note(Fn::kRestart, Phase::kFail, -1, "database stop failed");
      return true;
    }
    db_down_ = true;
    std::uniform_int_distribution<long> down(200, 800);
    const bool go_on = Idle(milliseconds(down(rng_)));
    StartDatabase();
    return go_on;
  }

  void StartDatabase() {
    std::vector<std::string> args = {"start", "-D", o_.pg_data, "-w", "-t", "30", "-l", o_.pg_log};
    if (!o_.pg_opts.empty()) {
      args.push_back("-o");
      args.push_back(o_.pg_opts);
    }
    const int started = RunCommand(PgCtl(args));
    db_down_ = started != 0;
    history_.Note(Fn::kRestart, started == 0 ? Phase::kOk : Phase::kFail, -1, "database");
  }

  int Finish() {
    if (db_down_) StartDatabase();
    return db_down_ ? 1 : 0;
  }

  const NemesisOptions& o_;
  HistoryWriter history_;
  std::mt19937_64 rng_;
  std::map<std::string, Target> targets_;  // by slot
  Clock::time_point last_big_fault_ = Clock::now();
  int big_faults_ = 0;
  bool db_down_ = false;
};

}  // namespace

int RunNemesis(const NemesisOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  Nemesis nemesis(options);
  return nemesis.Run();
}

}  // namespace ordo::torture
