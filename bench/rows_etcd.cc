// etcd:// against the raw etcd requests the backend issues, sent by a minimal client (cpp-httplib
// with hand-written JSON, one keep-alive connection per client) to the same single member; and
// `ordo run --backend etcd://… -- true` against `etcdctl lock NAME true`.
//
// The raw acquire+release is the backend's own fast path: a lease grant, one transaction that
// creates the holder key only if the name's queue is empty, and a lease revoke that deletes it.
// The raw wake-up is an etcd watch on the holder key woken by the revoke.
#include <cstdio>
#include <numeric>
#include <string>

#include <httplib.h>

#include "backends.h"
#include "etcd_cluster.h"
#include "ordo/ordo.h"
#include "temp_dir.h"

namespace ordo::bench {
namespace {

std::string B64(std::string_view in) {
  static const char kTable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kTable[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kTable[(acc << (6 - bits)) & 63];
  while (out.size() % 4 != 0) out += '=';
  return out;
}

// The value of a string field "name":"…" in a gateway reply (int64s are strings there).
std::string Field(const std::string& body, const std::string& name) {
  const std::string tag = "\"" + name + "\":\"";
  const auto at = body.find(tag);
  if (at == std::string::npos) return {};
  const auto start = at + tag.size();
  return body.substr(start, body.find('"', start) - start);
}

// One minimal client: the requests, nothing else.
class RawEtcd {
 public:
  explicit RawEtcd(int port) : client_("127.0.0.1", port) {
    client_.set_keep_alive(true);
    client_.set_tcp_nodelay(true);
  }
  bool Call(const char* path, const std::string& body, std::string* reply, std::string* error) {
    auto r = client_.Post(path, body, "application/json");
    if (!r || r->status != 200) {
      *error = std::string("raw etcd ") + path + ": " +
               (r ? "HTTP " + std::to_string(r->status) : httplib::to_string(r.error()));
      return false;
    }
    *reply = std::move(r->body);
    return true;
  }
  // Grant + create-if-free; returns the lease id, or "" (error set).
  std::string Lock(const std::string& name, std::string* revision, std::string* error) {
    std::string reply;
    if (!Call("/v3/lease/grant", R"({"TTL":"30"})", &reply, error)) return {};
    const std::string lease = Field(reply, "ID");
    const std::string dir = "/raw/lock/" + name + "/";
    std::string end = dir;
    end.back() = static_cast<char>(end.back() + 1);
    const std::string key = dir + "x/" + lease;
    const std::string txn =
        R"({"compare":[{"key":")" + B64(dir) + R"(","range_end":")" + B64(end) +
        R"(","target":"CREATE","result":"EQUAL","create_revision":"0"}],)"
        R"("success":[{"request_put":{"key":")" +
        B64(key) + R"(","value":")" + B64(R"({"owner":"raw","ttl_ms":30000})") + R"(","lease":")" +
        lease + R"("}},{"request_put":{"key":")" + B64("/raw/last/" + name) + R"(","value":""}}]})";
    if (!Call("/v3/kv/txn", txn, &reply, error)) return {};
    if (reply.find("\"succeeded\":true") == std::string::npos) {
      *error = "raw etcd: the name was not free";
      return {};
    }
    if (revision != nullptr) *revision = Field(reply, "revision");
    key_ = key;
    return lease;
  }
  bool Unlock(const std::string& lease, std::string* error) {
    std::string reply;
    return Call("/v3/lease/revoke", R"({"ID":")" + lease + R"("})", &reply, error);
  }
  const std::string& key() const { return key_; }

 private:
  httplib::Client client_;
  std::string key_;
};

// Blocks until `key` is deleted after `revision` (an etcd watch on one key).
bool WatchDelete(int port, const std::string& key, const std::string& revision,
                 std::string* error) {
  httplib::Client client("127.0.0.1", port);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v3/watch";
  req.set_header("Content-Type", "application/json");
  req.body = R"({"create_request":{"key":")" + B64(key) + R"(","start_revision":")" +
             std::to_string(std::stoull(revision) + 1) + R"("}})";
  bool deleted = false;
  req.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
    deleted = deleted || std::string_view(data, size).find("\"DELETE\"") != std::string_view::npos;
    return !deleted;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  client.send(req, res, err);
  if (!deleted) *error = "raw watch ended without the delete: " + httplib::to_string(err);
  return deleted;
}

class EtcdBench final : public BackendBench {
 public:
  std::string label() const override { return "etcd://"; }
  std::string scheme() const override { return "etcd"; }
  std::string url() const override { return etcd_ ? etcd_->Url() : ""; }
  std::vector<Scenario> scenarios() const override { return {Scenario::kPair, Scenario::kWake}; }
  std::chrono::microseconds block_delay() const override { return std::chrono::microseconds(5000); }

  std::string Setup(const Config&) override {
    try {
      etcd_ = std::make_unique<testing::EtcdCluster>(1);
    } catch (const std::exception& e) {
      return e.what();
    }
    port_ = std::stoi(etcd_->ClientAddress(0).substr(10));
    return "";
  }

  Baseline Measure(const Config& cfg, Scenario scenario, int clients) override {
    static int call = 0;
    const std::string tag = "raw" + std::to_string(++call);
    std::vector<std::unique_ptr<RawEtcd>> raw;
    for (int c = 0; c < std::max(clients, 2); ++c) raw.push_back(std::make_unique<RawEtcd>(port_));
    if (scenario == Scenario::kPair) {
      auto s = RunClosedLoop(
          cfg, clients,
          [&](int c, std::string* err) {
            RawEtcd& r = *raw[static_cast<std::size_t>(c)];
            const std::string lease =
                r.Lock(BenchName(tag + "-" + std::to_string(c)), nullptr, err);
            return !lease.empty() && r.Unlock(lease, err);
          },
          false);
      return {"raw etcd requests, minimal client", s,
              "POST /v3/lease/grant {TTL}\n"
              "POST /v3/kv/txn  compare create_revision(P lock/NAME/ … P lock/NAME0) = 0;\n"
              "                 success put P lock/NAME/x/LEASE (lease), put P last/NAME\n"
              "POST /v3/lease/revoke {ID}   (deletes the holder key)"};
    }
    // kWake: the holder's key, a watch on it, the revoke that deletes it.
    const std::string name = BenchName(tag + "-wake");
    std::string lease;
    std::string revision;
    std::string key;
    WakeOps ops;
    ops.hold = [&](std::string* err) {
      lease = raw[0]->Lock(name, &revision, err);
      key = raw[0]->key();
      return !lease.empty();
    };
    ops.wait = [&](std::string* err) { return WatchDelete(port_, key, revision, err); };
    ops.unwait = [&](std::string*) { return true; };
    ops.release = [&](std::string* err) { return raw[0]->Unlock(lease, err); };
    return {"etcd watch woken by the holder's revoke", MeasureWake(cfg, ops, block_delay()),
            "waiter: POST /v3/watch {create_request: holder key, start_revision}\n"
            "releaser: POST /v3/lease/revoke {ID}"};
  }

 private:
  std::unique_ptr<testing::EtcdCluster> etcd_;
  int port_ = 0;
};

}  // namespace

std::vector<std::unique_ptr<BackendBench>> EtcdBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  out.push_back(std::make_unique<EtcdBench>());
  return out;
}

void RunEtcdCliRow(const Config& cfg, Table& table) {
  std::fprintf(stderr, "ordo run (etcd://)\n");
  Row row{.backend = "ordo run -- true (etcd://)",
          .scenario = "wall time of one run, " + std::to_string(cfg.spawn_runs) + " runs",
          .clients = 1,
          .kind = RowKind::kWallTime,
          .baseline_name = "etcdctl lock NAME true"};
  const std::string truth = FindProgram("true");
  const std::string etcdctl = FindProgram("etcdctl");
  if (cfg.ordo_binary.empty() || !SchemeRegistered("etcd") || etcdctl.empty()) {
    row.ordo = Sample::NotAvailable("n/a (backend or etcdctl not built)");
    row.baseline = Sample::NotAvailable("—");
    table.Add(std::move(row));
    return;
  }
  std::unique_ptr<testing::EtcdCluster> etcd;
  try {
    etcd = std::make_unique<testing::EtcdCluster>(1);
  } catch (const std::exception& e) {
    row.ordo = Sample::Error(e.what());
    row.baseline = Sample::NotAvailable("—");
    table.Add(std::move(row));
    return;
  }
  auto sample = [](const std::vector<double>& us, int failures) {
    if (us.empty() || failures > 0) return Sample::Error(std::to_string(failures) + " runs failed");
    Sample s;
    std::vector<double> sorted = us;
    Percentiles(sorted, &s);
    s.p50_us = std::accumulate(us.begin(), us.end(), 0.0) / static_cast<double>(us.size());
    return s;
  };
  std::vector<double> ordo_us, etcdctl_us;
  int ordo_failures = 0, etcdctl_failures = 0;
  const std::string name = BenchName("cron-etcd");
  // Runs alternate so that drift of the shared machine hits both sides.
  for (int i = 0; i < cfg.spawn_runs; ++i) {
    double wall = 0;
    if (RunCommand({cfg.ordo_binary, "run", "--backend", etcd->Url(), "--lock", name, "--", truth},
                   &wall) == 0) {
      ordo_us.push_back(wall);
    } else {
      ++ordo_failures;
    }
    if (RunCommand({etcdctl, "--endpoints=" + etcd->ClientAddress(0), "lock", name, truth}, &wall,
                   {"ETCDCTL_API=3"}) == 0) {
      etcdctl_us.push_back(wall);
    } else {
      ++etcdctl_failures;
    }
  }
  row.ordo = sample(ordo_us, ordo_failures);
  row.baseline = sample(etcdctl_us, etcdctl_failures);
  row.detail = "ordo: ordo run --backend etcd://127.0.0.1:PORT --lock NAME -- " + truth +
               "\nbaseline: ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:PORT lock NAME " + truth +
               "   (the same single etcd member)";
  table.Add(std::move(row));
}

}  // namespace ordo::bench
