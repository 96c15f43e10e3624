// The nemesis: one fault at a time, at random, until the orchestrator closes the control socket.
//
//   pause    SIGSTOP a random worker for 1.5–3 TTLs, then SIGCONT: its lease expires while it
//            cannot notice, the classic GC pause of Kleppmann's example.
//   kill     SIGKILL a random worker mid-operation; the orchestrator starts a replacement.
//   restart  crash-restart PostgreSQL: `pg_ctl stop -m immediate` (no checkpoint, every
//            connection cut), down for 0.2–0.8 s, then start; the database must keep its tokens
//            and lock table. The orchestrator owns the cluster, so the nemesis asks it to do
//            that and waits for the answer. On http runs this alternates with SIGKILL of
//            `ordo serve`, which the orchestrator restarts.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <fstream>
#include <sstream>
#include <vector>

#include "history.h"
#include "subprocess.h"
#include "torture.h"

namespace ordo::torture {
namespace {

using testing::ReceiveWithFd;
using testing::SendWithFd;
using testing::SignalPidfd;

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
      // Even a short run gets one of each fault: first a pause, then a kill, and a database or
      // server restart at least every 2.5 s (1.5 s apart at the least; the first is due from
      // the start).
      const int fault = faults_++;
      const auto since_big = Clock::now() - last_big_fault_;
      const bool big_fault_due = (o_.restart_db || o_.kill_server) && fault >= 2 &&
                                 since_big > milliseconds(1500) &&
                                 (r < 0.3 || since_big > milliseconds(2500));
      if (big_fault_due) {
        // On http runs alternate between the server (first) and the database.
        // (database first when it fails over: that is what such a run is about).
        const bool server = o_.kill_server &&
                            (!o_.restart_db || big_faults_ % 2 == (o_.database_first ? 1 : 0));
        ++big_faults_;
        last_big_fault_ = Clock::now();
        if (server) {
          KillServer();
        } else if (!RestartDatabase()) {
          break;
        }
      } else if (fault == 0 || (fault != 1 && r < (election() ? 0.8 : 0.65))) {
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
      if (kind == "db") {
        db_reply_ = name;
        continue;
      }
      // Workers are keyed by slot ("w3" of "w3.2"), servers by replica ("server s1" of
      // "s1.2"): a replacement takes its slot.
      const std::string slot =
          (kind == "server" ? "server " : "") + name.substr(0, name.find('.'));
      auto& t = targets_[slot];
      if (t.pidfd >= 0) close(t.pidfd);
      t = {name, fd};
    }
  }

  std::vector<Target*> Workers() {
    std::vector<Target*> out;
    for (auto& [slot, t] : targets_) {
      if (!slot.starts_with("server") && t.pidfd >= 0) out.push_back(&t);
    }
    return out;
  }

  bool election() const { return !o_.leader_file.empty(); }

  Target* RandomWorker() {
    auto workers = Workers();
    if (workers.empty()) return nullptr;
    // Election runs: mostly the leader, whose pause or death is what the run is about.
    if (!o_.leader_file.empty() && std::uniform_real_distribution<double>(0, 1)(rng_) < 0.8) {
      std::ifstream in(o_.leader_file);
      std::string leader;
      std::getline(in, leader);
      for (Target* t : workers) {
        if (t->name == leader) return t;
      }
    }
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
    // Election runs pause longer: the next leader must win (one TTL) and make a transition
    // before the paused one wakes up, or there is nothing for fencing to refuse.
    std::uniform_real_distribution<double> ttls(election() ? 2.5 : 1.5, election() ? 4.0 : 3.0);
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

  // Kills one `ordo serve` replica (of one or more).
  void KillServer() {
    std::vector<Target*> servers;
    for (auto& [slot, t] : targets_) {
      if (slot.starts_with("server") && t.pidfd >= 0) servers.push_back(&t);
    }
    if (servers.empty()) return;
    std::uniform_int_distribution<std::size_t> i(0, servers.size() - 1);
    Target* t = servers[i(rng_)];
    if (SignalPidfd(t->pidfd, SIGKILL)) {
      history_.Note(Fn::kRestart, Phase::kOk, -1, "server " + t->name);
    }
  }

  // false when the orchestrator finished meanwhile.
  bool RestartDatabase() {
    std::uniform_int_distribution<long> down(200, 800);
    db_reply_.clear();
    if (!SendWithFd(o_.control_fd, "restart-db " + std::to_string(down(rng_)), -1)) return false;
    // The orchestrator answers once the database accepts connections again (it may finish the
    // run right after answering).
    bool go_on = true;
    while (db_reply_.empty() && go_on) go_on = Idle(milliseconds(100));
    if (!db_reply_.empty()) {
      history_.Note(Fn::kRestart, db_reply_ == "ok" ? Phase::kOk : Phase::kFail, -1, "database");
    }
    return go_on;
  }

  int Finish() { return 0; }

  const NemesisOptions& o_;
  HistoryWriter history_;
  std::mt19937_64 rng_;
  std::map<std::string, Target> targets_;  // by slot
  Clock::time_point last_big_fault_ = Clock::now() - milliseconds(1500);
  int faults_ = 0;
  int big_faults_ = 0;
  std::string db_reply_;  // "ok" or "fail" once the orchestrator restarted the database
};

}  // namespace

int RunNemesis(const NemesisOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  Nemesis nemesis(options);
  return nemesis.Run();
}

}  // namespace ordo::torture
