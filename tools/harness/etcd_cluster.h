// A throwaway etcd for tests: one member (the conformance suite) or a 3-member cluster (the
// fault test), each member on free loopback ports with its data directory in a fresh temporary
// directory, all gone when the process exits.
//
//   EtcdCluster& etcd = SharedEtcdCluster();      // one member, started on first use
//   auto locker = ordo::Open(etcd.Url());          // etcd://127.0.0.1:<port>
//
//   EtcdCluster three(3);                          // a cluster of three members
//   three.Kill(three.Leader(), SIGKILL);           // a leader crash
//   three.Start(i);                                // the member rejoins with its data
//
// It runs Debian's /usr/bin/etcd (package etcd-server) or $ORDO_ETCD. Members run with fsync on,
// a 100 ms heartbeat and a 1 s election timeout, so etcd's smallest lease TTL is 1.5 s (2 s
// after etcd rounds it up to whole seconds).
//
// A missing binary or a member that does not become healthy throws std::runtime_error with what
// to install or what the member logged: the test fails, it is never skipped.
//
// Cleanup: the destructor kills the members and removes the directory. Each member also gets
// SIGKILL when the thread that started it dies (PR_SET_PDEATHSIG), and a watchdog process kills
// whatever the pid files name and removes the directory when this process dies without running
// destructors (a crash, SIGKILL, a test timeout). A forked child that never calls exec does not
// own the cluster and leaves it alone.
//
// Thread safety: Url() and the accessors may be called from any thread; Start, Kill, Pause,
// Resume and Leader are meant for the test's main thread.
#ifndef ORDO_TOOLS_HARNESS_ETCD_CLUSTER_H_
#define ORDO_TOOLS_HARNESS_ETCD_CLUSTER_H_

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "subprocess.h"

namespace ordo::testing {

class EtcdCluster {
 public:
  // Starts `members` members (1 or 3) and waits until the cluster has a leader. Throws
  // std::runtime_error on failure.
  explicit EtcdCluster(int members = 1);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // etcd://127.0.0.1:<p1>[,127.0.0.1:<p2>…][?prefix=<prefix>] listing every member.
  std::string Url(std::string_view prefix = {}) const;
  // "127.0.0.1:<client port>" of member i.
  std::string ClientAddress(int i) const;
  int members() const { return static_cast<int>(members_.size()); }
  pid_t pid(int i) const { return members_[i].pid; }
  bool running(int i) const { return members_[i].pid > 0; }

  // Sends `sig` to member i. SIGKILL also reaps it (the member is down until Start(i)).
  void Kill(int i, int sig);
  // SIGSTOP / SIGCONT.
  void Pause(int i);
  void Resume(int i);
  // Starts member i again (after Kill) with its data directory; returns once it answers.
  void Start(int i);
  // The index of the member that is the Raft leader, as the members report it; waits up to
  // `timeout_ms` for one. Throws when no leader emerges.
  int Leader(int timeout_ms = 20'000);
  // Waits until every running, unpaused member answers and agrees on a leader.
  void WaitHealthy(int timeout_ms = 30'000);
  // One raw call to etcd's JSON gateway on member i (POST `path` with a JSON `body`): the
  // reply's body, or "" when the member gives no 200 reply. Lets a test change etcd's state
  // behind ordo's back (revoke a lease, list keys).
  std::string Call(int i, const std::string& path, const std::string& body) const;

  const std::string& dir() const { return dir_; }

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    pid_t pid = -1;
    bool started_once = false;
  };

  void Spawn(int i);
  void WaitAnswers(int i, int timeout_ms);
  [[noreturn]] void Fail(const std::string& what) const;

  std::string dir_;
  std::string binary_;
  std::string initial_cluster_;
  std::vector<Member> members_;
  pid_t owner_pid_ = 0;
  // Kills whatever the pid files name and removes dir_ when this process dies.
  ::ordo::testing::Watchdog watchdog_;
};

// The process-wide single member, started on first use and stopped at exit.
EtcdCluster& SharedEtcdCluster();

}  // namespace ordo::testing

#endif  // ORDO_TOOLS_HARNESS_ETCD_CLUSTER_H_
