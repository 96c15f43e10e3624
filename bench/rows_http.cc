// http:// (a spawned `ordo serve` on inproc:, reached over keep-alive) against Redis driven the
// way redis-benchmark does, and against inproc: called directly; and the memory row.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "backends.h"
#include "ordo/ordo.h"
#include "redis_client.h"
#include "subprocess.h"

namespace ordo::bench {

OrdoServe::OrdoServe(const Config& cfg, const std::string& backend_url,
                     const std::vector<std::string>& extra_args) {
  if (cfg.ordo_binary.empty()) {
    error_ = "the ordo binary is not built";
    return;
  }
  port_ = testing::FreeLoopbackPort();
  // Through sh only to send the server's log lines away from the table; exec keeps the pid.
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>/dev/null",
                                   cfg.ordo_binary, "serve", "--backend", backend_url,
                                   "--listen", "127.0.0.1:" + std::to_string(port_)};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  server_ = std::make_unique<Server>(std::move(argv));
  if (!WaitForPort(port_, std::chrono::seconds(10))) error_ = "ordo serve did not start";
}

pid_t OrdoServe::pid() const { return server_ ? server_->pid() : -1; }

namespace {

constexpr const char* kFencedLua =
    "local f = tonumber(redis.call('GET', KEYS[2]) or '0') "
    "if tonumber(ARGV[2]) < f then return 0 end "
    "redis.call('SET', KEYS[2], ARGV[2]) redis.call('SET', KEYS[1], ARGV[1]) return 1";
constexpr const char* kCasLua =
    "local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') "
    "if v ~= tonumber(ARGV[1]) then return 0 end "
    "redis.call('HSET', KEYS[1], 'v', v + 1, 'value', ARGV[2]) return v + 1";

// The rows of http://. With `versus_inproc` the baseline is the same Locker calls on inproc:
// directly (what HTTP itself costs); otherwise Redis.
class HttpBench final : public BackendBench {
 public:
  explicit HttpBench(bool versus_inproc) : versus_inproc_(versus_inproc) {}
  std::string label() const override {
    return versus_inproc_ ? "http:// vs inproc: direct" : "http:// (ordo serve on inproc:)";
  }
  std::string scheme() const override { return "http"; }
  std::string url() const override { return serve_ ? serve_->url() : ""; }
  std::vector<Scenario> scenarios() const override {
    if (versus_inproc_) return {Scenario::kPair};
    return BackendBench::scenarios();
  }
  std::string NotAvailable(const Config& cfg) const override {
    if (!SchemeRegistered("http") || cfg.ordo_binary.empty()) return "n/a (backend not built)";
    return "";
  }
  std::chrono::microseconds block_delay() const override { return std::chrono::microseconds(3000); }

  std::string Setup(const Config& cfg) override {
    serve_ = std::make_unique<OrdoServe>(cfg, "inproc:");
    if (!serve_->error().empty()) return serve_->error();
    if (!versus_inproc_) {
      redis_ = std::make_unique<RedisServer>();
      if (!redis_->error().empty()) return redis_->error();
    }
    return "";
  }

  Baseline Measure(const Config& cfg, Scenario scenario, int clients) override {
    if (versus_inproc_) {
      return {"the same calls on inproc: in-process",
              MeasureOrdo(cfg, "inproc:", scenario, clients, block_delay()), ""};
    }
    std::string error;
    std::vector<std::unique_ptr<RedisClient>> conns;
    for (int c = 0; c < std::max(clients, 2); ++c) {
      auto conn = RedisClient::Connect(redis_->port(), &error);
      if (!conn) return {"redis", Sample::Error(error), ""};
      conns.push_back(std::move(conn));
    }
    static int call = 0;  // a fresh key per call: each round's CAS starts from version 0
    const std::string key = BenchName("redis-" + std::to_string(static_cast<int>(scenario)) + "-" +
                                      std::to_string(++call));
    auto conn = [&](int c) -> RedisClient& { return *conns[static_cast<std::size_t>(c)]; };
    switch (scenario) {
      case Scenario::kPair:
      case Scenario::kContended: {
        const bool one = scenario == Scenario::kContended;
        auto s = RunClosedLoop(
            cfg, clients,
            [&](int c, std::string* err) {
              const std::string k = one ? key : key + "-" + std::to_string(c);
              RedisReply r;
              // Contended: retry SET NX until it succeeds, as a Redis lock client spins.
              do {
                r = RedisReply{};
                if (!conn(c).Command({"SET", k, "owner", "NX", "PX", "30000"}, &r, err)) return false;
              } while (one && r.nil);
              if (r.nil) {
                *err = "SET NX found the key set";
                return false;
              }
              return conn(c).Command({"DEL", k}, &r, err);
            },
            false);
        return {one ? "redis SET NX PX (retried) + DEL" : "redis SET NX PX + DEL", s,
                "SET <key> <owner> NX PX 30000\nDEL <key>"};
      }
      case Scenario::kWake: {
        WakeOps ops{[&](std::string*) { return true; },
                    [&](std::string* err) {
                      RedisReply r;
                      return conn(1).Command({"BLPOP", key, "0"}, &r, err);
                    },
                    [&](std::string*) { return true; },
                    [&](std::string* err) {
                      RedisReply r;
                      return conn(0).Command({"LPUSH", key, "x"}, &r, err);
                    }};
        return {"redis BLPOP woken by LPUSH", MeasureWake(cfg, ops, block_delay()),
                "waiter: BLPOP <key> 0\nreleaser: LPUSH <key> x"};
      }
      case Scenario::kFenced:
      case Scenario::kCas: {
        const bool fenced = scenario == Scenario::kFenced;
        RedisReply sha;
        if (!conn(0).Command({"SCRIPT", "LOAD", fenced ? kFencedLua : kCasLua}, &sha, &error)) {
          return {"redis", Sample::Error(error), ""};
        }
        std::vector<long long> versions(static_cast<std::size_t>(clients), 0);
        const std::string data(64, 'x');
        auto s = RunClosedLoop(
            cfg, clients,
            [&](int c, std::string* err) {
              const std::string k = key + "-" + std::to_string(c);
              RedisReply r;
              auto& v = versions[static_cast<std::size_t>(c)];
              if (fenced) {
                if (!conn(c).Command({"EVALSHA", sha.str, "2", k, k + ":fence", data, "7"}, &r, err)) return false;
                return r.integer == 1;
              }
              if (!conn(c).Command({"EVALSHA", sha.str, "1", k, std::to_string(v), data}, &r, err)) return false;
              if (r.integer == 0) return false;
              v = r.integer;
              return true;
            },
            false);
        return {fenced ? "redis EVALSHA token-checked SET" : "redis EVALSHA version-checked HSET", s,
                fenced ? kFencedLua : kCasLua};
      }
    }
    return {};
  }

 private:
  bool versus_inproc_;
  std::unique_ptr<OrdoServe> serve_;
  std::unique_ptr<RedisServer> redis_;
};

constexpr const char* kRingLabel = "http:// events ring on vs off";

// False, with both sides of `row` marked n/a, when `ordo serve` cannot run in this build.
bool ServeRowAvailable(const Config& cfg, Row* row) {
  if (SchemeRegistered("http") && !cfg.ordo_binary.empty()) return true;
  row->ordo = Sample::NotAvailable("n/a (backend not built)");
  row->baseline = Sample::NotAvailable("—");
  return false;
}

// What the events ring (GET /v1/events, the live page) costs the hot path: acquire+release
// through `ordo serve` with the ring on (the default) against a second `ordo serve
// --events-ring 0` running at the same time. The two are measured in many short alternating
// rounds, in the order on, off, off, on, …, so that the shared machine's slow moments and any
// drift hit both alike. The ratio is on ÷ off; the target is at least 0.95 (the ring costs at
// most 5%).
Row RingRow(const Config& cfg, int clients) {
  Row row;
  row.backend = kRingLabel;
  row.scenario = ScenarioName(Scenario::kPair, clients);
  row.clients = clients;
  row.baseline_name = "ordo serve --events-ring 0, the same calls";
  if (!ServeRowAvailable(cfg, &row)) return row;
  OrdoServe on(cfg, "inproc:");
  OrdoServe off(cfg, "inproc:", {"--events-ring", "0"});
  if (!on.error().empty() || !off.error().empty()) {
    row.ordo = Sample::Error(on.error().empty() ? off.error() : on.error());
    return row;
  }
  const int rounds = cfg.quick || cfg.smoke ? 2 : 8;
  Config round_cfg = cfg;
  round_cfg.seconds = 2 * cfg.seconds / rounds;  // twice a usual row's time, for less noise
  const auto delay = std::chrono::microseconds(3000);
  std::vector<Sample> with_ring, without;
  for (int r = 0; r < rounds; ++r) {
    const bool on_first = r % 4 == 0 || r % 4 == 3;
    for (int side = 0; side < 2; ++side) {
      const bool ring = (side == 0) == on_first;
      (ring ? with_ring : without)
          .push_back(MeasureOrdo(round_cfg, ring ? on.url() : off.url(), Scenario::kPair,
                                 clients, delay));
    }
  }
  row.ordo = Merge(with_ring);
  row.baseline = Merge(without);
  return row;
}

// A socket that sent a request and is left waiting for the answer.
int SendRaw(int port, const std::string& request) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return -1;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

// Peak RSS of `ordo serve` on inproc: holding `leases` leases with `waiters` blocked acquires;
// the baseline is redis-server holding as many SET NX PX keys with as many BLPOP clients.
Row MemoryRow(const Config& cfg) {
  Row row;
  row.backend = "memory: ordo serve (inproc:)";
  row.scenario = "peak RSS, " + std::to_string(cfg.memory_leases) + " held leases + " +
                 std::to_string(cfg.memory_waiters) + " waiters";
  row.clients = cfg.memory_waiters;
  row.kind = RowKind::kMemory;
  row.baseline_name = "redis-server, as many SET NX PX keys + BLPOP clients";
  if (!ServeRowAvailable(cfg, &row)) return row;
  OrdoServe serve(cfg, "inproc:");
  if (!serve.error().empty()) {
    row.ordo = Sample::Error(serve.error());
    return row;
  }
  // Leases through the real client, 4 connections in parallel.
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::string first_error;
  std::mutex error_mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      auto locker = Open(serve.url());
      if (!locker.ok()) {
        failures.fetch_add(1);
        return;
      }
      for (int i = next.fetch_add(1); i < cfg.memory_leases; i = next.fetch_add(1)) {
        auto lease = (*locker)->Acquire(
            {.name = BenchName("held-" + std::to_string(i)), .ttl = std::chrono::minutes(10)});
        if (!lease.ok()) {
          failures.fetch_add(1);
          std::lock_guard<std::mutex> lock(error_mu);
          if (first_error.empty()) first_error = lease.status().message();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failures.load() > 0) {
    row.ordo = Sample::Error(std::to_string(failures.load()) + " acquires failed: " + first_error);
    return row;
  }
  // Waiters: raw keep-alive connections, each blocked in an acquire of a held name.
  std::vector<int> fds;
  for (int i = 0; i < cfg.memory_waiters; ++i) {
    const std::string body = R"({"owner":"waiter","ttl_ms":60000,"wait_ms":60000})";
    const std::string request = "POST /v1/locks/" + BenchName("held-" + std::to_string(i % cfg.memory_leases)) +
                                "/acquire HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                "application/json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
    const int fd = SendRaw(serve.port(), request);
    if (fd >= 0) fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(cfg.smoke ? 200 : 1500));
  const long ordo_kib = PeakRssKiB(serve.pid());
  for (int fd : fds) close(fd);
  if (ordo_kib < 0 || fds.size() != static_cast<std::size_t>(cfg.memory_waiters)) {
    row.ordo = Sample::Error("could not read VmHWM or connect the waiters");
    return row;
  }
  row.ordo.ops_per_sec = static_cast<double>(ordo_kib) / 1024.0;

  RedisServer redis;
  if (!redis.error().empty()) {
    row.baseline = Sample::Error(redis.error());
    return row;
  }
  std::string error;
  auto conn = RedisClient::Connect(redis.port(), &error);
  if (!conn) {
    row.baseline = Sample::Error(error);
    return row;
  }
  constexpr int kBatch = 1000;
  for (int i = 0; i < cfg.memory_leases; i += kBatch) {
    const int end = std::min(cfg.memory_leases, i + kBatch);
    for (int j = i; j < end; ++j) {
      conn->Send({"SET", BenchName("held-" + std::to_string(j)), "owner:token", "NX", "PX", "600000"},
                 &error);
    }
    for (int j = i; j < end; ++j) {
      RedisReply r;
      if (!conn->Read(&r, &error)) {
        row.baseline = Sample::Error(error);
        return row;
      }
    }
  }
  std::vector<std::unique_ptr<RedisClient>> blocked;
  for (int i = 0; i < cfg.memory_waiters; ++i) {
    auto c = RedisClient::Connect(redis.port(), &error);
    if (!c || !c->Send({"BLPOP", BenchName("wait-" + std::to_string(i)), "0"}, &error)) {
      row.baseline = Sample::Error(error);
      return row;
    }
    blocked.push_back(std::move(c));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(cfg.smoke ? 200 : 1000));
  const long redis_kib = PeakRssKiB(redis.pid());
  if (redis_kib < 0) {
    row.baseline = Sample::Error("could not read redis-server's VmHWM");
    return row;
  }
  row.baseline.ops_per_sec = static_cast<double>(redis_kib) / 1024.0;
  return row;
}

}  // namespace

std::vector<std::unique_ptr<BackendBench>> HttpBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  out.push_back(std::make_unique<HttpBench>(false));
  out.push_back(std::make_unique<HttpBench>(true));
  return out;
}

void RunRingRows(const Config& cfg, Table& table) {
  std::fprintf(stderr, "%s\n", kRingLabel);
  for (int clients : {1, 8}) table.Add(RingRow(cfg, clients));
}

void RunMemoryRow(const Config& cfg, Table& table) {
  std::fprintf(stderr, "memory\n");
  table.Add(MemoryRow(cfg));
}

}  // namespace ordo::bench
