// The parked-waiters row: `ordo serve` (inproc:) with 10,000 acquires waiting on one held lock.
// A waiter is parked, not a thread, so the server's thread count stays that of an idle server;
// the row reports its threads and RSS and the latency of a release sent on a fresh connection,
// each release waking exactly one waiter. The baseline is redis-server with as many clients
// blocked in BLPOP, and an LPUSH sent on a fresh connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "backends.h"
#include "procs.h"
#include "redis_client.h"

namespace ordo::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

bool SendAll(int fd, const std::string& bytes) {
  return send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

// Reads one HTTP reply framed by Content-Length (or until EOF); "" on time-out.
std::string ReadReply(int fd, std::chrono::milliseconds timeout) {
  std::string bytes;
  const auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    const auto end = bytes.find("\r\n\r\n");
    if (end != std::string::npos) {
      const auto cl = bytes.find("Content-Length: ");
      if (cl != std::string::npos && cl < end &&
          bytes.size() >= end + 4 + std::stoul(bytes.substr(cl + 16))) {
        return bytes;
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return bytes;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  return "";
}

// One request on a fresh connection; the reply's body ("" on failure).
std::string Exchange(int port, const std::string& request) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  std::string reply = SendAll(fd, request) ? ReadReply(fd, std::chrono::seconds(5)) : "";
  close(fd);
  const auto end = reply.find("\r\n\r\n");
  return end == std::string::npos ? "" : reply.substr(end + 4);
}

std::string Post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      auto v = line.substr(field.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "?";
}

void RaiseNoFile() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

Row ParkedRow(const Config& cfg) {
  const int waiters = cfg.smoke ? 100 : 10'000;
  const int releases = cfg.smoke ? 3 : cfg.quick ? 20 : 100;
  Row row;
  row.backend = "parked waiters: ordo serve (inproc:)";
  row.clients = waiters;
  row.kind = RowKind::kLatency;
  row.baseline_name = "redis-server, as many BLPOP clients; LPUSH on a fresh connection";
  row.scenario = "release on a fresh connection, " + std::to_string(waiters) + " parked waiters";
  if (!SchemeRegistered("http") || cfg.ordo_binary.empty()) {
    row.ordo = Sample::NotAvailable("n/a (backend not built)");
    row.baseline = Sample::NotAvailable("—");
    return row;
  }
  RaiseNoFile();
  OrdoServe serve(cfg, "inproc:");
  if (!serve.error().empty()) {
    row.ordo = Sample::Error(serve.error());
    return row;
  }
  const std::string name = BenchName("parked");
  const std::string base = "/v1/locks/" + name;
  auto lease = nlohmann::json::parse(
      Exchange(serve.port(), Post(base + "/acquire", R"({"ttl_ms":600000})")), nullptr, false);
  if (!lease.is_object() || !lease.contains("token")) {
    row.ordo = Sample::Error("the first acquire failed");
    return row;
  }
  std::uint64_t token = lease["token"];
  const std::string wait = Post(base + "/acquire", R"({"ttl_ms":600000,"wait_ms":60000})");
  std::vector<pollfd> fds;
  for (int i = 0; i < waiters; ++i) {
    const int fd = ConnectLoopback(serve.port());
    if (fd < 0 || !SendAll(fd, wait)) {
      row.ordo = Sample::Error("could not connect waiter " + std::to_string(i));
      for (auto& p : fds) close(p.fd);
      return row;
    }
    fds.push_back({fd, POLLIN, 0});
  }
  // Bounded wait until the server reports them all parked.
  const std::string all = "ordo_waiting_acquires " + std::to_string(waiters) + "\n";
  const auto parked_by = SteadyClock::now() + std::chrono::seconds(30);
  while (SteadyClock::now() < parked_by &&
         Exchange(serve.port(), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").find(all) ==
             std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string threads = ProcStatus(serve.pid(), "Threads");
  const std::string rss = ProcStatus(serve.pid(), "VmRSS");
  std::vector<double> latencies;
  std::string error;
  for (int r = 0; r < releases && error.empty(); ++r) {
    const auto t0 = SteadyClock::now();
    const std::string released =
        Exchange(serve.port(), Post(base + "/release", "{\"token\":" + std::to_string(token) + "}"));
    latencies.push_back(
        std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count());
    if (released.find("\"released\":true") == std::string::npos) {
      error = "release " + std::to_string(r) + " failed: " + released;
      break;
    }
    // Exactly one waiter wins; its lease carries the next token to release.
    int woken = 0;
    const auto until = SteadyClock::now() + std::chrono::seconds(5);
    while (woken == 0 && SteadyClock::now() < until) {
      if (poll(fds.data(), fds.size(), 100) <= 0) continue;
      for (auto& p : fds) {
        if (p.fd < 0 || p.revents == 0) continue;
        const std::string reply = ReadReply(p.fd, std::chrono::seconds(1));
        const auto body = nlohmann::json::parse(reply.substr(reply.find("\r\n\r\n") + 4),
                                                nullptr, false);
        if (body.is_object() && body.contains("token")) token = body["token"];
        close(p.fd);
        p.fd = -1;
        ++woken;
      }
    }
    if (woken != 1) error = std::to_string(woken) + " waiters woken by one release";
  }
  for (auto& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  if (!error.empty()) {
    row.ordo = Sample::Error(error);
    return row;
  }
  Percentiles(latencies, &row.ordo);
  row.scenario += " (" + threads + " server threads, RSS " + rss + ")";

  RedisServer redis;
  if (!redis.error().empty()) {
    row.baseline = Sample::Error(redis.error());
    return row;
  }
  std::vector<std::unique_ptr<RedisClient>> blocked;
  const std::string key = BenchName("parked-list");
  for (int i = 0; i < waiters; ++i) {
    auto c = RedisClient::Connect(redis.port(), &error);
    if (!c || !c->Send({"BLPOP", key, "0"}, &error)) {
      row.baseline = Sample::Error(error);
      return row;
    }
    blocked.push_back(std::move(c));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(cfg.smoke ? 100 : 500));
  std::vector<double> base_latencies;
  for (int r = 0; r < releases; ++r) {
    const auto t0 = SteadyClock::now();
    auto c = RedisClient::Connect(redis.port(), &error);
    RedisReply reply;
    if (!c || !c->Command({"LPUSH", key, "x"}, &reply, &error)) {
      row.baseline = Sample::Error(error);
      return row;
    }
    base_latencies.push_back(
        std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count());
  }
  Percentiles(base_latencies, &row.baseline);
  return row;
}

}  // namespace

void RunParkedRow(const Config& cfg, Table& table) {
  std::fprintf(stderr, "parked waiters\n");
  table.Add(ParkedRow(cfg));
}

}  // namespace ordo::bench
