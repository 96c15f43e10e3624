// Load tests of ordo serve, bounded in time (plain build only: sanitizers make the figures
// meaningless and the run slow):
//   - 10,000 slowloris connections while /healthz keeps answering, and every one of them is
//     closed by its header deadline although it keeps sending;
//   - 5,000 parked waiters while the whole process has at most 64 threads;
//   - with them parked, a release on a fresh connection is answered within 100 ms and wakes
//     exactly one waiter.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <thread>

#include "http_test_util.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

std::size_t ThreadsOfThisProcess() {
  std::size_t n = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

std::string Rss() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return line.substr(6);
  }
  return "?";
}

// A gauge of the server's /metrics, or -1.
double Gauge(httplib::Client& client, const std::string& name) {
  auto m = client.Get("/metrics");
  if (!m) return -1;
  const auto at = m->body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::atof(m->body.c_str() + at + name.size() + 2);
}

// The slow clients live in a child process: 10,000 client sockets and the server's 10,000 would
// not fit one descriptor table. Forked before the server starts (no threads yet), it reads the
// port from `control`, connects `count` sockets, sends each a partial header, writes one byte
// to `ready` per 1,000 connected, then sends one more header byte on each every 500 ms until
// `control` closes.
[[noreturn]] void SlowClients(int control, int ready, int count) {
  int port = 0;
  if (read(control, &port, sizeof(port)) != sizeof(port)) _exit(1);
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(count));
  const char start[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  for (int i = 0; i < count; ++i) {
    const int fd = ConnectLoopback(port);
    if (fd < 0) _exit(2);
    send(fd, start, sizeof(start) - 1, MSG_NOSIGNAL);
    fds.push_back(fd);
    if ((i + 1) % 1000 == 0 && write(ready, "r", 1) != 1) _exit(3);
  }
  while (true) {
    pollfd p{control, POLLIN, 0};
    if (poll(&p, 1, 500) != 0) _exit(0);  // the parent closed control (or wrote): done
    for (int fd : fds) send(fd, "s", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

TEST(HttpLoadTest, TenThousandSlowlorisConnectionsWhileHealthzAnswers) {
  RaiseFdLimit();
  constexpr int kSlow = 10'000;
  int control[2], ready[2];
  ASSERT_EQ(pipe(control), 0);
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(control[1]);
    close(ready[0]);
    SlowClients(control[0], ready[1], kSlow);
  }
  close(control[0]);
  close(ready[1]);
  // The header deadline: every slow connection must be closed by it.
  constexpr auto kHeaderDeadline = 6s;
  auto server = StartServer({.io_timeout = kHeaderDeadline});
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  ASSERT_EQ(write(control[1], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  const auto started = SteadyClock::now();
  int connected = 0;
  char c;
  while (connected < kSlow / 1000 && read(ready[0], &c, 1) == 1) ++connected;
  ASSERT_EQ(connected, kSlow / 1000) << "the slow clients could not all connect";
  const auto connect_took = SteadyClock::now() - started;
  auto client = ClientFor(*server);
  const double open = Gauge(*client, "ordo_open_connections");
  EXPECT_GE(open, kSlow * 0.95) << "the slow connections are open on the server";

  // While they trickle, /healthz on fresh connections answers promptly.
  std::chrono::milliseconds worst{0};
  int answered = 0;
  while (SteadyClock::now() - started < kHeaderDeadline - 1s || answered < 5) {
    auto fresh = ClientFor(*server);
    const auto t0 = SteadyClock::now();
    auto r = fresh->Get("/healthz");
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0);
    ASSERT_TRUE(r) << "no answer from /healthz with " << kSlow << " slow connections";
    EXPECT_EQ(r->status, 200);
    worst = std::max(worst, took);
    ++answered;
    std::this_thread::sleep_for(100ms);
    if (answered > 200) break;
  }
  EXPECT_LT(worst, 500ms) << "the slowest /healthz";
  std::cout << kSlow << " slow connections (connected in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(connect_took).count()
            << " ms): " << answered << " /healthz, slowest " << worst.count() << " ms; "
            << ThreadsOfThisProcess() << " threads, RSS" << Rss() << "\n";

  // Although each keeps sending a byte every 500 ms, each is closed by its header deadline.
  const auto by = started + kHeaderDeadline + 10s;
  double left = open;
  while (SteadyClock::now() < by && (left = Gauge(*client, "ordo_open_connections")) > 10) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_LE(left, 10) << "slow connections outlived the header deadline";
  close(control[1]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  close(ready[0]);
}

TEST(HttpLoadTest, FiveThousandParkedWaitersAtMostSixtyFourThreads) {
  RaiseFdLimit();
  constexpr int kWaiters = 5'000;
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = ClientFor(*server);
  const std::string name = UniqueName("parked");
  const std::string base = "/v1/locks/" + name;
  auto first = client->Post((base + "/acquire").c_str(), R"({"ttl_ms":60000})", "application/json");
  ASSERT_EQ(first->status, 200);
  const auto token = BodyOf(first)["token"].get<std::uint64_t>();

  const std::string body = R"({"ttl_ms":60000,"wait_ms":30000})";
  const std::string request = "POST " + base + "/acquire HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  std::vector<int> fds;
  for (int i = 0; i < kWaiters; ++i) {
    const int fd = ConnectLoopback(server->port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    fds.push_back(fd);
  }
  const auto parked_by = SteadyClock::now() + 20s;
  double waiting = 0;
  while (SteadyClock::now() < parked_by &&
         (waiting = Gauge(*client, "ordo_waiting_acquires")) < kWaiters) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(waiting, kWaiters);
  const std::size_t threads = ThreadsOfThisProcess();
  std::cout << kWaiters << " parked waiters: " << threads << " threads, RSS" << Rss() << "\n";
  EXPECT_LE(threads, 64u) << "parked waiters hold threads";

  // A release on a fresh connection is answered within 100 ms and wakes exactly one waiter.
  auto fresh = ClientFor(*server);
  const auto t0 = SteadyClock::now();
  auto released = fresh->Post((base + "/release").c_str(), json{{"token", token}}.dump(),
                              "application/json");
  const auto took = SteadyClock::now() - t0;
  ASSERT_TRUE(released);
  EXPECT_EQ(released->status, 200);
  EXPECT_LT(took, 100ms);
  std::cout << "release on a fresh connection: "
            << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us\n";
  std::vector<pollfd> pfds;
  for (int fd : fds) pfds.push_back({fd, POLLIN, 0});
  int woken = 0;
  std::string winner;
  const auto until = SteadyClock::now() + 1500ms;
  while (SteadyClock::now() < until) {
    const int ready = poll(pfds.data(), pfds.size(), 100);
    if (ready <= 0) continue;
    for (auto& p : pfds) {
      if (p.revents == 0 || p.fd < 0) continue;
      char buf[4096];
      const ssize_t n = recv(p.fd, buf, sizeof(buf), 0);
      if (n > 0 && winner.empty()) winner.assign(buf, static_cast<std::size_t>(n));
      ++woken;
      p.fd = -1;  // answered (or closed): stop polling it
    }
  }
  EXPECT_EQ(woken, 1) << "one release, one winner";
  EXPECT_EQ(ParseReply(winner).status, 200) << winner;
  EXPECT_EQ(Gauge(*client, "ordo_waiting_acquires"), kWaiters - 1);
  server->Stop();  // the others are answered 503
  for (int fd : fds) close(fd);
}

}  // namespace
}  // namespace ordo::testing
