#include "etcd_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "temp_dir.h"
#include "subprocess.h"

namespace ordo::testing {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

std::string FindEtcd() {
  if (const char* env = std::getenv("ORDO_ETCD"); env != nullptr && *env != '\0') {
    if (access(env, X_OK) == 0) return env;
    throw std::runtime_error(std::string("ORDO_ETCD=") + env + " is not executable");
  }
  for (const char* path : {"/usr/bin/etcd", "/usr/local/bin/etcd"}) {
    if (access(path, X_OK) == 0) return path;
  }
  throw std::runtime_error(
      "etcd not found (/usr/bin/etcd). The etcd tests need a real server; install the Debian "
      "package 'etcd-server' (./dev does) or set ORDO_ETCD");
}

// A member's view of the cluster: {its member id, the leader's id}; empty on no answer.
std::pair<std::string, std::string> MemberStatus(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(std::chrono::milliseconds(500));
  client.set_read_timeout(std::chrono::milliseconds(1000));
  auto res = client.Post("/v3/maintenance/status", "{}", "application/json");
  if (!res || res->status != 200) return {};
  auto body = nlohmann::json::parse(res->body, nullptr, false);
  if (!body.is_object() || !body.contains("header") || !body.contains("leader")) return {};
  const auto& header = body["header"];
  if (!header.contains("member_id")) return {};
  return {header["member_id"].get<std::string>(), body["leader"].get<std::string>()};
}

}  // namespace

EtcdCluster::EtcdCluster(int members) : owner_pid_(getpid()) {
  if (members != 1 && members != 3) throw std::invalid_argument("EtcdCluster: 1 or 3 members");
  binary_ = FindEtcd();
  std::string tmpl = (std::getenv("TMPDIR") != nullptr && *std::getenv("TMPDIR")
                          ? std::string(std::getenv("TMPDIR"))
                          : std::string("/tmp")) +
                     "/ordo-etcd-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp for etcd: ") + std::strerror(errno));
  }
  dir_ = tmpl;
  try {
    watchdog_.Start("for f in " + ShellQuote(dir_) +
                    "/*.pid; do [ -f \"$f\" ] && kill -9 \"$(cat \"$f\")\" 2>/dev/null; done; "
                    "rm -rf " + ShellQuote(dir_));
  } catch (const std::runtime_error& e) {
    Fail(e.what());
  }
  members_.resize(members);
  for (int i = 0; i < members; ++i) {
    members_[i].name = "m" + std::to_string(i);
    members_[i].client_port = FreeLoopbackPort();
    members_[i].peer_port = FreeLoopbackPort();
    if (i > 0) initial_cluster_ += ",";
    initial_cluster_ += members_[i].name + "=http://127.0.0.1:" +
                        std::to_string(members_[i].peer_port);
  }
  for (int i = 0; i < members; ++i) Spawn(i);
  WaitHealthy();
}

EtcdCluster::~EtcdCluster() {
  if (getpid() != owner_pid_) return;  // a forked child: the cluster is its parent's
  for (int i = 0; i < members(); ++i) {
    if (members_[i].pid > 0) Kill(i, SIGKILL);
  }
  watchdog_.Finish();  // removes dir_
}

void EtcdCluster::Spawn(int i) {
  Member& m = members_[i];
  const std::string client = "http://127.0.0.1:" + std::to_string(m.client_port);
  const std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
  std::vector<std::string> argv = {binary_,
                                   "--name=" + m.name,
                                   "--data-dir=" + dir_ + "/" + m.name,
                                   "--listen-client-urls=" + client,
                                   "--advertise-client-urls=" + client,
                                   "--listen-peer-urls=" + peer,
                                   "--initial-advertise-peer-urls=" + peer,
                                   "--initial-cluster=" + initial_cluster_,
                                   "--initial-cluster-token=ordo-test",
                                   std::string("--initial-cluster-state=") +
                                       (m.started_once ? "existing" : "new"),
                                   "--heartbeat-interval=100",
                                   "--election-timeout=1000",
                                   "--logger=zap",
                                   "--log-outputs=stderr"};
  const std::string log = dir_ + "/" + m.name + ".log";
  const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Killed when the thread that started it dies; its own process group, so that signals sent
  // to the test's process group do not reach the member.
  const pid_t pid = ::ordo::testing::Spawn(
      argv, {.stdin_fd = devnull, .stdout_fd = out, .stderr_fd = out,
             .new_process_group = true, .kill_with_parent = true});
  if (out >= 0) close(out);
  if (devnull >= 0) close(devnull);
  if (pid < 0) Fail("fork for etcd member " + m.name);
  m.pid = pid;
  m.started_once = true;
  std::ofstream(dir_ + "/" + m.name + ".pid") << pid << "\n";
}

void EtcdCluster::WaitAnswers(int i, int timeout_ms) {
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  while (MemberStatus(members_[i].client_port).first.empty()) {
    int status = 0;
    if (waitpid(members_[i].pid, &status, WNOHANG) == members_[i].pid) {
      members_[i].pid = -1;
      Fail("etcd member " + members_[i].name + " exited (status " + std::to_string(status) + ")");
    }
    if (SteadyClock::now() > deadline) Fail("etcd member " + members_[i].name + " never answered");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void EtcdCluster::WaitHealthy(int timeout_ms) {
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  for (int i = 0; i < members(); ++i) {
    if (running(i)) WaitAnswers(i, timeout_ms);
  }
  while (true) {
    std::string leader;
    bool agree = true;
    for (int i = 0; i < members(); ++i) {
      if (!running(i)) continue;
      auto [id, seen] = MemberStatus(members_[i].client_port);
      if (id.empty() || seen.empty() || seen == "0" || (!leader.empty() && seen != leader)) {
        agree = false;
        break;
      }
      leader = seen;
    }
    if (agree && !leader.empty()) return;
    if (SteadyClock::now() > deadline) Fail("the etcd members do not agree on a leader");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int EtcdCluster::Leader(int timeout_ms) {
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    std::vector<std::string> ids(members_.size());
    std::string leader;
    for (int i = 0; i < members(); ++i) {
      if (!running(i)) continue;
      auto [id, seen] = MemberStatus(members_[i].client_port);
      ids[i] = id;
      if (!seen.empty() && seen != "0") leader = seen;
    }
    for (int i = 0; i < members(); ++i) {
      if (!leader.empty() && ids[i] == leader) return i;
    }
    if (SteadyClock::now() > deadline) Fail("no etcd leader");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void EtcdCluster::Kill(int i, int sig) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  if (sig == SIGKILL) kill(m.pid, SIGCONT);  // a paused member must not stay a zombie-to-be
  kill(m.pid, sig);
  if (sig == SIGKILL) {
    int status = 0;
    while (waitpid(m.pid, &status, 0) < 0 && errno == EINTR) {
    }
    m.pid = -1;
    std::error_code ec;
    fs::remove(dir_ + "/" + m.name + ".pid", ec);
  }
}

void EtcdCluster::Pause(int i) { Kill(i, SIGSTOP); }
void EtcdCluster::Resume(int i) { Kill(i, SIGCONT); }

void EtcdCluster::Start(int i) {
  if (members_[i].pid > 0) return;
  Spawn(i);
  WaitAnswers(i, 30'000);
}

std::string EtcdCluster::Url(std::string_view prefix) const {
  std::string url = "etcd://";
  for (int i = 0; i < members(); ++i) {
    if (i > 0) url += ",";
    url += ClientAddress(i);
  }
  if (!prefix.empty()) url += "?prefix=" + std::string(prefix);
  return url;
}

std::string EtcdCluster::Call(int i, const std::string& path, const std::string& body) const {
  httplib::Client client("127.0.0.1", members_[i].client_port);
  client.set_connection_timeout(std::chrono::milliseconds(2000));
  client.set_read_timeout(std::chrono::milliseconds(5000));
  auto res = client.Post(path.c_str(), body, "application/json");
  return res && res->status == 200 ? res->body : std::string();
}

std::string EtcdCluster::ClientAddress(int i) const {
  return "127.0.0.1:" + std::to_string(members_[i].client_port);
}

void EtcdCluster::Fail(const std::string& what) const {
  std::string logs;
  for (const auto& m : members_) {
    logs += "\n--- " + m.name + ".log ---\n" + Tail(ReadFile(dir_ + "/" + m.name + ".log"), 1500);
  }
  throw std::runtime_error("etcd test cluster in " + dir_ + ": " + what + logs);
}

EtcdCluster& SharedEtcdCluster() {
  static std::mutex mu;
  static std::unique_ptr<EtcdCluster> cluster;  // destroyed at exit: stops the member
  std::lock_guard<std::mutex> lock(mu);
  if (cluster == nullptr) cluster = std::make_unique<EtcdCluster>(1);
  return *cluster;
}

}  // namespace ordo::testing
