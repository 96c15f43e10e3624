// etcd://host:port[,host:port…][?prefix=/ordo/] — locks, fences and objects in etcd v3.
//
// Transport: etcd's gRPC-gateway JSON API (/v3/kv/range, /v3/kv/txn, /v3/lease/…, /v3/watch)
// over plain HTTP with cpp-httplib, which ordo already uses for http://; no gRPC or protobuf
// build dependency. Keys and values are base64 in the JSON, 64-bit numbers are strings.
//
// Key layout under the prefix P (default "/ordo/"):
//
//   P lock/NAME/x/LEASE   an exclusive holder or waiter; value {"owner","ttl_ms"}; attached to
//   P lock/NAME/s/LEASE   its own etcd lease (TTL = the lock's ttl, rounded up to seconds).
//                         A permit (limit N > 1) is an x/ key whose value adds "limit" and,
//                         once it holds, "slot"
//   P slot/NAME/S         permit slot S of NAME, taken by the holder whose token is its value,
//                         under that holder's lease (so it goes with the holder key)
//   P last/NAME           the largest token handed out for NAME: "" written in the transaction
//                         that creates a key which holds at once (its mod_revision is the
//                         token), else the zero-padded token, raised when a waiter or permit
//                         comes to hold
//   P fence/KEY/f         a FencedStore key's fence (decimal token)
//   P fence/KEY/d         its data; the key's etcd `version` is the FencedStore version
//   P obj/KEY             a VersionedStore object; its etcd `version` is the object version
//
// The recipe is etcd's own (client/v3/concurrency mutex.go, recipes/rwmutex.go): every
// acquisition creates one key; the keys of a name, ordered by create revision, form the queue.
// An exclusive key holds the lock when it is the oldest; a shared key holds it when no
// exclusive key is older. The fencing token is the key's create revision: etcd's revision
// counter is cluster-wide and Raft-replicated, so tokens grow across leader changes and
// restarts. A try-lock is one transaction that creates the key only if nothing conflicts; a
// waiting acquire creates its key in the same transaction and then watches only its
// predecessor (the next older key, or for shared mode the next older exclusive key) for
// deletion. Expiry is etcd's lease expiry, judged by the etcd leader's clock; a holder's key
// vanishes with its lease and the watcher behind it wakes up.
//
// Semaphores follow etcd's recipe shape too: a permit's key joins the queue unconditionally,
// and the N oldest permit keys (of the limit N in force, the oldest key's) hold. Permits are
// released in any order, so no single key ahead decides a waiter's turn: the first waiter
// watches the deletions under the name, every later waiter only the waiter just ahead of it
// (no herd: a release wakes one waiter; WaitTurn says more). A key that becomes a holder then claims the lowest free slot in one transaction
// that creates P slot/NAME/S only if it does not exist (create_revision == 0) and only while
// the holder key still exists, under the holder's lease: two live permits never share a slot,
// and a slot is freed in the same revision as its holder key (release, revoke or expiry). At
// most N-1 other holders hold slots then, all below N, so a free one always exists. A key
// whose limit differs from the holders' refuses itself (kInvalidArgument) and leaves.
//
// Endpoints: calls go to one endpoint at a time; a transport failure moves to the next one for
// the following call. A refused connection (nothing was sent) and calls that are safe to repeat
// (reads, keep-alives, lease grants) are retried on every endpoint once; a transaction that may
// or may not have been applied is kUnavailable. etcd's error replies carry gRPC trailers that
// cpp-httplib 0.11 cannot read, so every error reply arrives as a broken reply: the backend
// never depends on an error's contents (a lost lease is found by looking, not by the error).
//
// Thread safety: the Locker and its stores are one object, safe for concurrent use; each call
// borrows a keep-alive connection (httplib::Client is not safe for concurrent requests).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "ordo/engine.h"
#include "ordo/lock.h"
#include "ordo/names.h"
#include "ordo/registry.h"
#include "ordo/store.h"
#include "sigpipe_guard.h"

namespace ordo {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

constexpr auto kConnectTimeout = milliseconds(2'000);
// A reply slower than this is an outage (a paused or partitioned member): move on.
constexpr auto kRequestTimeout = milliseconds(5'000);
constexpr std::size_t kMaxIdlePerEndpoint = 16;
// Optimistic fenced transactions retry this often before reporting kUnavailable.
constexpr int kMaxTxnAttempts = 100;
// Own holder keys remembered for a Release or Renew without a lookup.
constexpr std::size_t kMaxRemembered = 65'536;

using adapters::SigpipeGuard;

// --- encoding ---------------------------------------------------------------------------------

std::string Base64(std::string_view in) {
  static const char kTable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t n = (static_cast<unsigned char>(in[i]) << 16) |
                            (static_cast<unsigned char>(in[i + 1]) << 8) |
                            static_cast<unsigned char>(in[i + 2]);
    out += kTable[(n >> 18) & 63];
    out += kTable[(n >> 12) & 63];
    out += kTable[(n >> 6) & 63];
    out += kTable[n & 63];
  }
  if (i + 1 == in.size()) {
    const std::uint32_t n = static_cast<unsigned char>(in[i]) << 16;
    out += kTable[(n >> 18) & 63];
    out += kTable[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const std::uint32_t n = (static_cast<unsigned char>(in[i]) << 16) |
                            (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kTable[(n >> 18) & 63];
    out += kTable[(n >> 12) & 63];
    out += kTable[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string Unbase64(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      v = 62;
    } else if (c == '/' || c == '_') {
      v = 63;
    } else {
      continue;  // '=' padding
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// The gateway writes int64 fields as JSON strings and leaves out zero values.
std::uint64_t U64(const json& object, const char* key) {
  if (!object.is_object()) return 0;
  auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (s.empty() || s[0] == '-') return 0;
    return std::strtoull(s.c_str(), nullptr, 10);
  }
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer()) return static_cast<std::uint64_t>(std::max<std::int64_t>(0, *it));
  return 0;
}

std::int64_t I64(const json& object, const char* key) {
  if (!object.is_object()) return 0;
  auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_string()) return std::strtoll(it->get_ref<const std::string&>().c_str(), nullptr, 10);
  if (it->is_number()) return it->get<std::int64_t>();
  return 0;
}

// The end of the key range that holds every key starting with `prefix`.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last < 0xff) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// One key-value from a range or watch reply.
struct Kv {
  std::string key;
  std::string value;
  std::uint64_t create_revision = 0;
  std::uint64_t mod_revision = 0;
  std::uint64_t version = 0;
  std::int64_t lease = 0;
};

Kv KvOf(const json& j) {
  Kv kv;
  if (j.contains("key")) kv.key = Unbase64(j["key"].get<std::string>());
  if (j.contains("value")) kv.value = Unbase64(j["value"].get<std::string>());
  kv.create_revision = U64(j, "create_revision");
  kv.mod_revision = U64(j, "mod_revision");
  kv.version = U64(j, "version");
  kv.lease = I64(j, "lease");
  return kv;
}

std::vector<Kv> KvsOf(const json& range_response) {
  std::vector<Kv> out;
  if (range_response.is_object() && range_response.contains("kvs")) {
    for (const auto& item : range_response["kvs"]) out.push_back(KvOf(item));
  }
  return out;
}

// Txn building blocks (etcdserverpb.Compare / RequestOp in JSON).
json CompareCreate(const std::string& key, std::uint64_t revision,
                   const std::string& range_end = {}) {
  json c = {{"key", Base64(key)},
            {"target", "CREATE"},
            {"result", "EQUAL"},
            {"create_revision", std::to_string(revision)}};
  if (!range_end.empty()) c["range_end"] = Base64(range_end);
  return c;
}
json CompareMod(const std::string& key, std::uint64_t revision) {
  return {{"key", Base64(key)},
          {"target", "MOD"},
          {"result", "EQUAL"},
          {"mod_revision", std::to_string(revision)}};
}
json CompareVersion(const std::string& key, std::uint64_t version) {
  return {{"key", Base64(key)},
          {"target", "VERSION"},
          {"result", "EQUAL"},
          {"version", std::to_string(version)}};
}
json OpPut(const std::string& key, std::string_view value, std::int64_t lease = 0) {
  json put = {{"key", Base64(key)}, {"value", Base64(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  return {{"request_put", put}};
}
json OpDelete(const std::string& key) {
  return {{"request_delete_range", {{"key", Base64(key)}}}};
}
json OpRange(const std::string& key, const std::string& range_end = {}, bool by_create = false) {
  json r = {{"key", Base64(key)}};
  if (!range_end.empty()) r["range_end"] = Base64(range_end);
  if (by_create) {
    r["sort_order"] = "ASCEND";
    r["sort_target"] = "CREATE";
  }
  return {{"request_range", r}};
}

// P last/NAME's value once a waiter or permit has held: the largest token, zero-padded so that
// etcd's byte-wise VALUE comparison orders tokens numerically. (A try-lock that wins at once
// writes "" instead: its token is that write's mod_revision.)
std::string PaddedToken(std::uint64_t token) {
  char buf[21];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(token));
  return buf;
}

// A nested transaction that raises `last` to `token`, never lowering it (two holders that
// joined the queue in one order may record their tokens in the other).
json OpRaiseLast(const std::string& last, std::uint64_t token) {
  const std::string padded = PaddedToken(token);
  json below = {{"key", Base64(last)},
                {"target", "VALUE"},
                {"result", "LESS"},
                {"value", Base64(padded)}};
  json raise = {{"request_txn", {{"compare", {below}}, {"success", {OpPut(last, padded)}}}}};
  return {{"request_txn",
           {{"compare", {CompareCreate(last, 0)}},
            {"success", {OpPut(last, padded)}},
            {"failure", {raise}}}}};
}

// The range responses of a txn reply, in order.
std::vector<std::vector<Kv>> TxnRanges(const json& reply) {
  std::vector<std::vector<Kv>> out;
  if (!reply.contains("responses")) return out;
  for (const auto& r : reply["responses"]) {
    if (r.contains("response_range")) out.push_back(KvsOf(r["response_range"]));
  }
  return out;
}

bool Succeeded(const json& reply) {
  return reply.contains("succeeded") && reply["succeeded"].is_boolean() &&
         reply["succeeded"].get<bool>();
}

// The Raft term a reply was answered in (0 when the reply has none).
std::uint64_t RaftTerm(const json& reply) {
  return reply.contains("header") ? U64(reply["header"], "raft_term") : 0;
}

std::uint64_t HeaderRevision(const json& reply) {
  return reply.contains("header") ? U64(reply["header"], "revision") : 0;
}

std::string Hex(std::int64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

std::int64_t TtlSeconds(milliseconds ttl) { return (ttl.count() + 999) / 1000; }

// A holder key's value: who holds it and, for a permit, its limit and (once it holds) slot.
std::string HolderValue(std::string_view owner, milliseconds ttl, std::uint32_t limit,
                        std::optional<std::uint32_t> slot = std::nullopt) {
  json value = {{"owner", owner}, {"ttl_ms", ttl.count()}};
  if (limit > 1) value["limit"] = limit;
  if (slot) value["slot"] = *slot;
  return value.dump();
}

// A streaming watch of [key, range_end) (one key when range_end is empty) from start_revision.
// The gateway writes one JSON message per line; `on_result` gets each message's "result" and
// returns false to end the stream. `deletions_only` leaves out puts (etcd's NOPUT filter).
httplib::Request WatchRequest(const std::string& key, const std::string& range_end,
                              std::uint64_t start_revision,
                              std::function<bool(const json& result)> on_result,
                              bool deletions_only = false) {
  json create = {{"key", Base64(key)}, {"start_revision", std::to_string(start_revision)}};
  if (!range_end.empty()) create["range_end"] = Base64(range_end);
  if (deletions_only) create["filters"] = json::array({"NOPUT"});
  httplib::Request req;
  req.method = "POST";
  req.path = "/v3/watch";
  req.set_header("Content-Type", "application/json");
  req.body = json{{"create_request", create}}.dump();
  auto buffer = std::make_shared<std::string>();
  req.content_receiver = [buffer, on_result = std::move(on_result)](
                             const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
    buffer->append(data, size);
    std::size_t nl;
    while ((nl = buffer->find('\n')) != std::string::npos) {
      json message = json::parse(buffer->substr(0, nl), nullptr, false);
      buffer->erase(0, nl + 1);
      const json& result =
          message.is_object() && message.contains("result") ? message["result"] : message;
      if (result.is_object() && !on_result(result)) return false;
    }
    return true;
  };
  return req;
}

// --- the client ---------------------------------------------------------------------------------

struct Endpoint {
  std::string host;
  int port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

class EtcdLocker;

// A Locker::Watch registration: one streaming watch on the lock's key range, on a thread of
// its own, cancelled by the destructor.
class EtcdSubscription final : public Subscription {
 public:
  EtcdSubscription(EtcdLocker* locker, std::string key, std::function<void()> changed,
                   std::uint64_t start_revision);
  ~EtcdSubscription() override;

 private:
  void Run();

  EtcdLocker* const locker_;
  const std::string key_;
  const std::function<void()> changed_;
  std::uint64_t next_revision_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                  // guarded by mu_
  httplib::Client* active_ = nullptr;  // guarded by mu_: the connection to stop()
  std::thread thread_;
};

class EtcdLocker final : public Locker, public FencedStore, public VersionedStore {
 public:
  EtcdLocker(std::vector<Endpoint> endpoints, std::string prefix, std::string display)
      : endpoints_(std::move(endpoints)),
        prefix_(std::move(prefix)),
        display_(std::move(display)),
        idle_(endpoints_.size()) {}

  // --- Locker --------------------------------------------------------------------------------

  Result<Lease> Acquire(const LockRequest& request) override {
    ORDO_RETURN_IF_ERROR(ValidateRequest(request));
    const bool permit = request.limit > 1;
    const auto deadline = SteadyClock::now() + request.wait;
    const std::string owner = request.owner.empty() ? DefaultOwner() : request.owner;
    const bool exclusive = request.mode == LockMode::kExclusive;
    // The lease's TTL starts counting no earlier than this.
    Fresh fresh{SteadyClock::now(), SystemClock::now()};
    // A grant repeated after a lost reply only leaves an unused lease to expire.
    auto granted = Post("/v3/lease/grant", {{"TTL", std::to_string(TtlSeconds(request.ttl))}},
                        /*idempotent=*/true);
    if (!granted.ok()) return granted.status();
    const std::int64_t lease_id = I64(*granted, "ID");
    const std::int64_t lease_ttl = I64(*granted, "TTL");
    if (lease_id == 0) return InternalError("etcd granted no lease: " + granted->dump());
    const std::string key = LockDir(request.name) + (exclusive ? "x/" : "s/") + Hex(lease_id);
    const std::string value = HolderValue(owner, request.ttl, request.limit);
    const std::string dir = LockDir(request.name);
    // Nothing conflicting: the whole queue (exclusive) or its exclusive keys (shared) is empty.
    const std::string conflicts = exclusive ? dir : dir + "x/";
    std::vector<json> create = {OpPut(key, value, lease_id), OpPut(LastKey(request.name), "")};
    // A key that joins the queue records its token in P last/NAME only once it holds (a waiter
    // that gives up, or refuses a mismatched limit, was never handed a token).
    const json join = json::array({OpPut(key, value, lease_id)});
    json txn = {{"compare", {CompareCreate(conflicts, 0, PrefixEnd(conflicts))}},
                {"success", create}};
    if (permit) {
      // A permit always joins the queue; its place in it decides (WaitTurn).
      txn = {{"success", join}};
    } else if (request.wait.count() > 0) {
      // A waiting acquire joins the queue in the same transaction when the lock is taken.
      txn["failure"] = join;
    } else {
      txn["failure"] = {OpRange(dir, PrefixEnd(dir), true)};  // who holds it, and their limit
    }
    auto reply = Post("/v3/kv/txn", txn, /*idempotent=*/false);
    if (!reply.ok()) {
      RevokeQuietly(lease_id);
      return reply.status();
    }
    const std::uint64_t revision = HeaderRevision(*reply);
    Lease lease{.name = request.name,
                .owner = owner,
                .token = revision,
                .mode = request.mode,
                .expires_at = SystemClock::now() + std::chrono::seconds(lease_ttl),
                .ttl = request.ttl,
                .slot = 0};
    const bool won_at_once = Succeeded(*reply) && !permit;
    if (won_at_once) return Deliver(std::move(lease), request, key, lease_id, lease_ttl, fresh);
    if (request.wait.count() == 0 && !permit) {
      RevokeQuietly(lease_id);
      auto ranges = TxnRanges(*reply);
      const auto holders = ranges.empty() ? std::vector<Kv>{} : HoldersOf(ranges[0]);
      if (!holders.empty() && LimitOf(holders[0]) != request.limit) {
        return LimitMismatchError(request.name, request.limit, LimitOf(holders[0]));
      }
      return LockHeldError("lock '" + request.name + "' is held");
    }
    Status waited = WaitTurn(request, key, revision, lease_id, deadline, &fresh);
    if (waited.ok() && permit) {
      auto slot = ClaimSlot(request, owner, key, revision, lease_id);
      if (slot.ok()) lease.slot = *slot;
      waited = slot.status();
    } else if (waited.ok()) {
      waited = RecordToken(request.name, key, revision);
    }
    if (!waited.ok()) {
      RevokeQuietly(lease_id);  // leaves the queue: the key goes with its lease
      return waited;
    }
    return Deliver(std::move(lease), request, key, lease_id, lease_ttl, fresh);
  }

  Result<Lease> Renew(const Lease& lease, milliseconds ttl) override {
    ORDO_RETURN_IF_ERROR(ValidateName(lease.name));
    ORDO_RETURN_IF_ERROR(ValidateTtl(ttl));
    // This Locker's own leases are known; another process's are looked up by token.
    std::optional<Own> own = Recall(lease.token, lease.name);
    if (!own) {
      auto found = FindHolder(lease.name, lease.token);
      if (!found.ok()) return found.status();
      json value = json::parse(found->value, nullptr, false);
      own = Own{lease.name, found->key, found->lease, value.is_object() ? I64(value, "ttl_ms") : 0,
                LimitOf(*found), SlotOf(*found).value_or(lease.slot)};
    }
    const Own kv = *own;
    const std::int64_t old_ttl_ms = kv.ttl_ms;
    Lease out = lease;
    out.ttl = ttl;
    if (TtlSeconds(milliseconds(old_ttl_ms)) == TtlSeconds(ttl)) {
      // Same lease length: etcd's keep-alive, then make sure the key is still there (a release
      // may have deleted it just before the keep-alive reached the lease). The check is a
      // linearizable read, answered in the cluster's current Raft term; a keep-alive answered
      // in an older term came from a leader deposed meanwhile (one cut off from the others
      // still renews leases in its own lessor until it steps down), so its TTL may never have
      // reached the lease the current leader expires: that keep-alive is sent again.
      for (int round = 0; round < 2; ++round) {
        const auto sent = SystemClock::now();  // the TTL restarts no earlier than this
        auto alive = Post("/v3/lease/keepalive", {{"ID", std::to_string(kv.lease)}}, true);
        if (!alive.ok()) return alive.status();
        const json& result = alive->contains("result") ? (*alive)["result"] : *alive;
        const std::int64_t left = I64(result, "TTL");
        auto check = Post("/v3/kv/txn", {{"compare", {CompareCreate(kv.key, lease.token)}}}, true);
        if (!check.ok()) return check.status();
        if (left <= 0 || !Succeeded(*check)) {
          Forget(lease.token);
          return Lost(lease);
        }
        const std::uint64_t alive_term = RaftTerm(result);
        const std::uint64_t check_term = RaftTerm(*check);
        if (alive_term >= check_term || alive_term == 0) {  // 0: a reply without a term
          out.expires_at = sent + std::chrono::seconds(left);
          return out;
        }
        if (round == 1) {
          return UnavailableError("keep-alive of lock '" + lease.name +
                                  "' was answered in Raft term " + std::to_string(alive_term) +
                                  ", older than the cluster's term " + std::to_string(check_term) +
                                  " (a deposed leader); renew again");
        }
      }
    }
    // A different length: move the key to a new lease (a put keeps its create revision, so
    // the token stays), then drop the old lease.
    const auto sent = SystemClock::now();
    auto granted = Post("/v3/lease/grant", {{"TTL", std::to_string(TtlSeconds(ttl))}}, true);
    if (!granted.ok()) return granted.status();
    const std::int64_t lease_id = I64(*granted, "ID");
    const bool permit = kv.limit > 1;
    const std::string value =
        HolderValue(lease.owner, ttl, kv.limit,
                    permit ? std::optional<std::uint32_t>(kv.slot) : std::nullopt);
    json moves = json::array({OpPut(kv.key, value, lease_id)});
    // A permit's slot key moves to the new lease with it (the holder key's existence, compared
    // below, proves the slot key is still this holder's: they share a lease).
    if (permit) moves.push_back(OpPut(SlotKey(lease.name, kv.slot), std::to_string(lease.token), lease_id));
    json txn = {{"compare", {CompareCreate(kv.key, lease.token)}}, {"success", moves}};
    auto moved = Post("/v3/kv/txn", txn, false);
    if (!moved.ok() || !Succeeded(*moved)) {
      RevokeQuietly(lease_id);
      if (!moved.ok()) return moved.status();
      Forget(lease.token);
      return Lost(lease);
    }
    RevokeQuietly(kv.lease);
    Remember(lease.token, {lease.name, kv.key, lease_id, ttl.count(), kv.limit, kv.slot});
    out.expires_at = sent + std::chrono::seconds(I64(*granted, "TTL"));
    return out;
  }

  Status Release(const Lease& lease) override {
    ORDO_RETURN_IF_ERROR(ValidateName(lease.name));
    if (std::optional<Own> own = Recall(lease.token, lease.name)) {
      // The lease was granted for this holder key alone: revoking it deletes the key, in one
      // Raft entry. Any other answer (etcd's "lease not found" for an expired lease reaches
      // httplib as a broken reply: the gateway sends gRPC trailers it cannot read) is settled
      // by the lookup below.
      Forget(lease.token);
      if (Post("/v3/lease/revoke", {{"ID", std::to_string(own->lease)}}, false).ok()) {
        return OkStatus();
      }
    }
    auto found = FindHolder(lease.name, lease.token);
    if (!found.ok()) return found.status();
    json deletes = json::array({OpDelete(found->key)});
    if (LimitOf(*found) > 1) {
      if (auto slot = SlotOf(*found)) deletes.push_back(OpDelete(SlotKey(lease.name, *slot)));
    }
    json txn = {{"compare", {CompareCreate(found->key, lease.token)}}, {"success", deletes}};
    auto reply = Post("/v3/kv/txn", txn, /*idempotent=*/true);
    if (!reply.ok()) return reply.status();
    if (!Succeeded(*reply)) return Lost(lease).status();
    RevokeQuietly(found->lease);
    return OkStatus();
  }

  Result<LockState> Describe(std::string_view name) override {
    ORDO_RETURN_IF_ERROR(ValidateName(name));
    const std::string dir = LockDir(name);
    json txn = {{"success", {OpRange(LastKey(name)), OpRange(dir, PrefixEnd(dir), true)}}};
    auto reply = Post("/v3/kv/txn", txn, true);
    if (!reply.ok()) return reply.status();
    auto ranges = TxnRanges(*reply);
    if (ranges.size() != 2) return InternalError("malformed etcd reply: " + reply->dump());
    if (ranges[0].empty()) return NotFoundError("lock '" + std::string(name) + "' not found");
    LockState state;
    state.name = std::string(name);
    const Kv& last = ranges[0][0];
    state.last_token =
        last.value.empty() ? last.mod_revision : std::strtoull(last.value.c_str(), nullptr, 10);
    const auto holders = HoldersOf(ranges[1]);
    if (!holders.empty()) state.limit = LimitOf(holders[0]);
    for (const Kv& kv : holders) {
      Holder h;
      if (state.limit > 1) h.slot = SlotOf(kv).value_or(0);
      json value = json::parse(kv.value, nullptr, false);
      if (value.is_object() && value.contains("owner") && value["owner"].is_string()) {
        h.owner = value["owner"].get<std::string>();
      }
      h.token = kv.create_revision;
      h.mode = IsExclusiveKey(kv.key) ? LockMode::kExclusive : LockMode::kShared;
      h.expires_at = SystemClock::now();
      auto ttl = Post("/v3/lease/timetolive", {{"ID", std::to_string(kv.lease)}}, true);
      if (ttl.ok()) {
        h.expires_at += std::chrono::seconds(std::max<std::int64_t>(0, I64(*ttl, "TTL")));
      }
      state.holders.push_back(std::move(h));
      state.last_token = std::max(state.last_token, kv.create_revision);
    }
    return state;
  }

  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) override {
    std::vector<LockState> out;
    if (limit == 0) return out;
    const std::string from = prefix_ + "last/" + std::string(prefix);
    json range = {{"key", Base64(from)},
                  {"range_end", Base64(PrefixEnd(from))},
                  {"keys_only", true},
                  {"limit", std::to_string(limit)}};
    auto reply = Post("/v3/kv/range", range, true);
    if (!reply.ok()) return reply.status();
    const std::size_t skip = prefix_.size() + 5;  // "last/"
    for (const Kv& kv : KvsOf(*reply)) {
      auto state = Describe(std::string_view(kv.key).substr(skip));
      if (state.ok()) {
        out.push_back(std::move(*state));
      } else if (state.status().code() != StatusCode::kNotFound) {
        return state.status();
      }
    }
    return out;
  }

  Status Ping() override {
    auto reply = Post("/v3/kv/range", {{"key", Base64(prefix_ + "ping")}}, true);
    return reply.ok() ? OkStatus() : reply.status();
  }

  LockerTraits traits() const override { return {}; }
  FencedStore& fenced() override { return *this; }
  VersionedStore& objects() override { return *this; }

  std::unique_ptr<Subscription> Watch(std::string_view name,
                                      std::function<void()> changed) override {
    if (!ValidateName(name).ok()) return nullptr;
    // Start after the current revision, so that no change after Watch returns is missed.
    auto reply = Post("/v3/kv/range", {{"key", Base64(LastKey(name))}}, true);
    if (!reply.ok()) return nullptr;
    return std::make_unique<EtcdSubscription>(this, LockDir(name), std::move(changed),
                                              HeaderRevision(*reply) + 1);
  }

  // --- FencedStore ---------------------------------------------------------------------------

  Result<FencedWrite> Write(std::string_view key, std::string_view data, std::uint64_t token,
                            std::string_view lock_name) override {
    ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/true));
    for (int attempt = 0; attempt < kMaxTxnAttempts; ++attempt) {
      auto seen = ReadFence(key, token, lock_name);
      if (!seen.ok()) return seen.status();
      json txn = {{"compare", FenceCompares(*seen, key, token)},
                  {"success",
                   {OpPut(FenceKey(key), std::to_string(token)), OpPut(DataKey(key), data)}}};
      auto reply = Post("/v3/kv/txn", txn, /*idempotent=*/false);
      if (!reply.ok()) return reply.status();
      if (Succeeded(*reply)) return FencedWrite{token, seen->data_version + 1};
    }
    return UnavailableError("fenced write of '" + std::string(key) + "' kept conflicting");
  }

  Result<FencedValue> Read(std::string_view key, std::uint64_t token,
                           std::string_view lock_name) override {
    ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/false));
    for (int attempt = 0; attempt < kMaxTxnAttempts; ++attempt) {
      auto seen = ReadFence(key, token, lock_name);
      if (!seen.ok()) return seen.status();
      if (token != 0 && (token > seen->fence || !lock_name.empty())) {
        // Register the token (and, strict, check the holder) atomically with what was read.
        json txn = {{"compare", FenceCompares(*seen, key, token)}};
        if (token > seen->fence) txn["success"] = {OpPut(FenceKey(key), std::to_string(token))};
        auto reply = Post("/v3/kv/txn", txn, /*idempotent=*/true);
        if (!reply.ok()) return reply.status();
        if (!Succeeded(*reply)) continue;
      }
      if (!seen->has_data) return NotFoundError("fenced key '" + std::string(key) + "' not found");
      return FencedValue{std::move(seen->data), std::max(token, seen->fence), seen->data_version};
    }
    return UnavailableError("fenced read of '" + std::string(key) + "' kept conflicting");
  }

  // --- VersionedStore ------------------------------------------------------------------------

  Result<Versioned> Get(std::string_view key) override {
    ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
    auto reply = Post("/v3/kv/range", {{"key", Base64(ObjectKey(key))}}, true);
    if (!reply.ok()) return reply.status();
    auto kvs = KvsOf(*reply);
    if (kvs.empty()) return NotFoundError("object '" + std::string(key) + "' not found");
    return Versioned{std::move(kvs[0].value), kvs[0].version};
  }

  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value) override {
    ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, false, 0, {}));
    const std::string k = ObjectKey(key);
    // etcd counts a key's versions from 1 at creation, as VersionedStore does; 0 = absent.
    json txn = {{"compare", {CompareVersion(k, expected_version)}},
                {"success", {OpPut(k, value)}},
                {"failure", {OpRange(k)}}};
    auto reply = Post("/v3/kv/txn", txn, /*idempotent=*/false);
    if (!reply.ok()) return reply.status();
    if (Succeeded(*reply)) return expected_version + 1;
    auto ranges = TxnRanges(*reply);
    const std::uint64_t current = ranges.empty() || ranges[0].empty() ? 0 : ranges[0][0].version;
    return ObjectVersionMismatch(key, current, expected_version);
  }

  // Fenced CAS: the object's fence is the key P objfence/KEY. One snapshot reads the object,
  // its fence and (strict) the lock's holders; the decision is made here; one transaction
  // writes the object and raises the fence if the version, the fence's mod_revision and
  // (strict) the holder key are all still as read. A transaction that lost to a concurrent
  // change is decided again from a fresh snapshot.
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value, std::uint64_t token,
                                       std::string_view lock_name) override {
    ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, true, token, lock_name));
    const std::string object = ObjectKey(key);
    const std::string fence_key = prefix_ + "objfence/" + std::string(key);
    for (int attempt = 0; attempt < kMaxTxnAttempts; ++attempt) {
      auto ranges = Snapshot({OpRange(object), OpRange(fence_key)}, lock_name);
      if (!ranges.ok()) return ranges.status();
      const std::uint64_t current = (*ranges)[0].empty() ? 0 : (*ranges)[0][0].version;
      const std::uint64_t fence =
          (*ranges)[1].empty() ? 0 : std::strtoull((*ranges)[1][0].value.c_str(), nullptr, 10);
      const std::uint64_t fence_mod = (*ranges)[1].empty() ? 0 : (*ranges)[1][0].mod_revision;
      // The token first, then the version (store.h).
      if (token < fence) return StaleObjectToken(key, token, fence);
      std::string holder_key;
      if (!lock_name.empty()) {
        auto holder = HolderWithToken(ranges->back(), token, lock_name, fence);
        if (!holder.ok()) return holder.status();
        holder_key = std::move(*holder);
      }
      if (current != expected_version) {
        return ObjectVersionMismatch(key, current, expected_version);
      }
      json compares = json::array(
          {CompareVersion(object, expected_version), CompareMod(fence_key, fence_mod)});
      if (!holder_key.empty()) compares.push_back(CompareCreate(holder_key, token));
      json txn = {{"compare", compares},
                  {"success", {OpPut(object, value), OpPut(fence_key, std::to_string(token))}}};
      auto reply = Post("/v3/kv/txn", txn, /*idempotent=*/false);
      if (!reply.ok()) return reply.status();
      if (Succeeded(*reply)) return expected_version + 1;
    }
    return UnavailableError("fenced compare-and-swap of '" + std::string(key) +
                            "' kept conflicting");
  }

  // --- transport (used by EtcdSubscription too) ----------------------------------------------

  // One JSON call. Transport failures and etcd's own "unavailable" answers are kUnavailable and
  // move to the next endpoint; an idempotent call is retried there at once.
  Result<json> Post(const std::string& path, const json& body, bool idempotent) {
    SigpipeGuard no_sigpipe;
    const std::string text = body.dump();
    Status last;
    for (std::size_t t = 0; t < endpoints_.size(); ++t) {
      const std::size_t index = current_.load() % endpoints_.size();
      auto client = Borrow(index);
      client->set_read_timeout(kRequestTimeout);
      auto result = client->Post(path.c_str(), text, "application/json");
      if (!result) {
        last = UnavailableError("etcd at " + endpoints_[index].text() + " (" + path +
                                "): " + httplib::to_string(result.error()));
        Rotate(index);
        // A refused connection sent nothing: any call may go to the next endpoint. After a
        // failure mid-request only a call that is safe to repeat may.
        if (result.error() == httplib::Error::Connection || idempotent) continue;
        return last;
      }
      Return(index, std::move(client));
      json reply = json::parse(result->body, nullptr, false);
      if (result->status == 200 && reply.is_object()) return reply;
      const std::string message =
          reply.is_object() && reply.contains("message") && reply["message"].is_string()
              ? reply["message"].get<std::string>()
              : result->body.substr(0, 200);
      const std::int64_t code = reply.is_object() ? I64(reply, "code") : 0;
      const std::string what =
          "etcd at " + endpoints_[index].text() + " (" + path + "): " + message;
      if (code == 5) return NotFoundError(what);          // e.g. "requested lease not found"
      if (code == 3) return InvalidArgumentError(what);
      if (code == 14 || code == 4 || code == 8 || result->status >= 500) {
        last = UnavailableError(what);  // no leader, timeout, too many requests, …
        Rotate(index);
        if (idempotent) continue;
        return last;
      }
      return InternalError(what);
    }
    return last;
  }

  std::unique_ptr<httplib::Client> NewClient(std::size_t index) const {
    auto client = std::make_unique<httplib::Client>(endpoints_[index].host, endpoints_[index].port);
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);
    client->set_connection_timeout(kConnectTimeout);
    client->set_write_timeout(kRequestTimeout);
    return client;
  }

  std::size_t CurrentEndpoint() const { return current_.load() % endpoints_.size(); }
  void Rotate(std::size_t failed) {
    std::size_t expected = failed;
    current_.compare_exchange_strong(expected, (failed + 1) % endpoints_.size());
  }

 private:
  // When a lease's TTL last started counting, at the latest (a grant or keep-alive was sent).
  struct Fresh {
    SteadyClock::time_point steady;
    SystemClock::time_point wall;
  };

  static milliseconds KeepAliveEvery(milliseconds ttl) {
    return std::max(milliseconds(300), ttl / 3);
  }

  // Hands out a granted lease. A grant that took long (a paused member, a fail-over) may have
  // left little of the lease: it is refreshed first, so that a holder never starts with less
  // than two thirds of its TTL, and a lease that ended meanwhile is not handed out at all.
  Result<Lease> Deliver(Lease lease, const LockRequest& request, const std::string& key,
                        std::int64_t lease_id, std::int64_t lease_ttl, Fresh fresh) {
    if (SteadyClock::now() - fresh.steady > KeepAliveEvery(request.ttl)) {
      fresh = {SteadyClock::now(), SystemClock::now()};
      auto alive = Post("/v3/lease/keepalive", {{"ID", std::to_string(lease_id)}}, true);
      lease_ttl = alive.ok() ? I64(alive->contains("result") ? (*alive)["result"] : *alive, "TTL")
                             : 0;
      if (lease_ttl <= 0) {
        RevokeQuietly(lease_id);
        return alive.ok() ? UnavailableError("the lease on lock '" + request.name +
                                             "' ended before the grant could be delivered")
                          : alive.status();
      }
    }
    lease.expires_at = fresh.wall + std::chrono::seconds(lease_ttl);
    Remember(lease.token,
             {request.name, key, lease_id, request.ttl.count(), request.limit, lease.slot});
    return lease;
  }

  // A holder key this Locker created: enough to renew or release it without a lookup.
  struct Own {
    std::string name;
    std::string key;
    std::int64_t lease = 0;
    std::int64_t ttl_ms = 0;
    std::uint32_t limit = 1;
    std::uint32_t slot = 0;  // a permit's
  };

  void Remember(std::uint64_t token, Own own) {
    std::lock_guard<std::mutex> lock(own_mu_);
    // Leases that expired without a release stay behind; a bounded map forgets them in bulk
    // (the lookup by token still works for anything forgotten).
    if (own_.size() >= kMaxRemembered) own_.clear();
    own_[token] = std::move(own);
  }
  std::optional<Own> Recall(std::uint64_t token, std::string_view name) {
    std::lock_guard<std::mutex> lock(own_mu_);
    auto it = own_.find(token);
    if (it == own_.end() || it->second.name != name) return std::nullopt;
    return it->second;
  }
  void Forget(std::uint64_t token) {
    std::lock_guard<std::mutex> lock(own_mu_);
    own_.erase(token);
  }

  struct FenceSeen {
    std::uint64_t fence = 0;
    std::uint64_t fence_mod = 0;
    bool has_data = false;
    std::string data;
    std::uint64_t data_version = 0;
    std::string holder_key;  // strict mode: the live holder key whose create revision is token
  };

  std::string LockDir(std::string_view name) const {
    return prefix_ + "lock/" + std::string(name) + "/";
  }
  std::string LastKey(std::string_view name) const { return prefix_ + "last/" + std::string(name); }
  std::string FenceKey(std::string_view key) const {
    return prefix_ + "fence/" + std::string(key) + "/f";
  }
  std::string DataKey(std::string_view key) const {
    return prefix_ + "fence/" + std::string(key) + "/d";
  }
  std::string ObjectKey(std::string_view key) const { return prefix_ + "obj/" + std::string(key); }
  std::string SlotDir(std::string_view name) const {
    return prefix_ + "slot/" + std::string(name) + "/";
  }
  std::string SlotKey(std::string_view name, std::uint32_t slot) const {
    return SlotDir(name) + std::to_string(slot);
  }

  // A holder key's limit (1 for a plain lock) and, for a permit that holds, its slot.
  static std::uint32_t LimitOf(const Kv& kv) {
    json value = json::parse(kv.value, nullptr, false);
    const std::uint64_t limit = value.is_object() ? U64(value, "limit") : 0;
    return limit > 1 && limit <= 10'000 ? static_cast<std::uint32_t>(limit) : 1;
  }
  static std::optional<std::uint32_t> SlotOf(const Kv& kv) {
    json value = json::parse(kv.value, nullptr, false);
    if (!value.is_object() || !value.contains("slot")) return std::nullopt;
    return static_cast<std::uint32_t>(U64(value, "slot"));
  }

  static bool IsExclusiveKey(const std::string& key) {
    return key.size() > 19 && key.compare(key.size() - 19, 3, "/x/") == 0;
  }

  // The keys of a queue (ascending create revision) that hold the lock: the oldest key if it
  // is exclusive, else every shared key older than the oldest exclusive one. When the oldest
  // key is a permit of limit N: the N oldest permit keys of limit N (keys of another limit are
  // refusing themselves and do not count).
  static std::vector<Kv> HoldersOf(const std::vector<Kv>& queue) {
    std::vector<Kv> out;
    const std::uint32_t limit =
        !queue.empty() && IsExclusiveKey(queue[0].key) ? LimitOf(queue[0]) : 1;
    if (limit > 1) {
      for (const Kv& kv : queue) {
        if (!IsExclusiveKey(kv.key) || LimitOf(kv) != limit) continue;
        out.push_back(kv);
        if (out.size() == limit) break;
      }
      return out;
    }
    for (const Kv& kv : queue) {
      if (IsExclusiveKey(kv.key)) {
        if (out.empty()) out.push_back(kv);
        break;
      }
      out.push_back(kv);
    }
    return out;
  }

  static Result<Lease> Lost(const Lease& lease) {
    return LeaseLostError("lease " + std::to_string(lease.token) + " on lock '" + lease.name +
                          "' is not held (released, expired or taken over)");
  }

  // The live holder key of `name` whose create revision is `token`; kLeaseLost if none.
  Result<Kv> FindHolder(std::string_view name, std::uint64_t token) {
    const std::string dir = LockDir(name);
    auto reply = Post("/v3/kv/range",
                      {{"key", Base64(dir)},
                       {"range_end", Base64(PrefixEnd(dir))},
                       {"sort_order", "ASCEND"},
                       {"sort_target", "CREATE"}},
                      true);
    if (!reply.ok()) return reply.status();
    for (const Kv& kv : HoldersOf(KvsOf(*reply))) {
      if (kv.create_revision == token) return kv;
    }
    return LeaseLostError("lease " + std::to_string(token) + " on lock '" + std::string(name) +
                          "' is not held (released, expired or taken over)");
  }

  // Waits until the key created at `revision` holds the lock, watching only its predecessor.
  // The waiting key's own lease is kept alive meanwhile.
  Status WaitTurn(const LockRequest& request, const std::string& key, std::uint64_t revision,
                  std::int64_t lease_id, SteadyClock::time_point deadline, Fresh* fresh) {
    const bool exclusive = request.mode == LockMode::kExclusive;
    const bool permit = request.limit > 1;
    const std::string dir = LockDir(request.name);
    const milliseconds keepalive_every = KeepAliveEvery(request.ttl);
    auto last_keepalive = fresh->steady;
    while (true) {
      auto reply = Post("/v3/kv/range",
                        {{"key", Base64(dir)},
                         {"range_end", Base64(PrefixEnd(dir))},
                         {"max_create_revision", std::to_string(revision)},
                         {"sort_order", "ASCEND"},
                         {"sort_target", "CREATE"}},
                        true);
      if (!reply.ok()) return reply.status();
      const auto queue = KvsOf(*reply);
      const auto holders = HoldersOf(queue);
      if (!holders.empty() && LimitOf(holders[0]) != request.limit) {
        return LimitMismatchError(request.name, request.limit, LimitOf(holders[0]));
      }
      const Kv* predecessor = nullptr;
      bool mine = false;
      // A permit: the keys ahead that count (permits of this limit); it holds while fewer than
      // `limit` of them are ahead. Holders release in any order, so the first waiter (exactly
      // `limit` ahead: all holders) watches the deletions of the name's keys, and every later
      // waiter watches only the waiter just ahead of it, whose claim of a slot (a put) or
      // departure (a deletion) is the only change that can move it up to first waiter. A
      // release thus wakes one waiter, never the herd.
      std::vector<const Kv*> ahead;
      for (const Kv& kv : queue) {
        if (kv.key == key) {
          mine = true;
          break;
        }
        if (permit) {
          if (IsExclusiveKey(kv.key) && LimitOf(kv) == request.limit) ahead.push_back(&kv);
        } else if (exclusive || IsExclusiveKey(kv.key)) {
          predecessor = &kv;
        }
      }
      if (permit && ahead.size() >= request.limit) predecessor = ahead.back();
      const bool first_waiter = permit && ahead.size() == request.limit;
      if (!mine) {
        return UnavailableError("the waiting key of lock '" + request.name +
                                "' vanished (its lease expired while the wait went on)");
      }
      if (predecessor == nullptr) return OkStatus();
      const auto now = SteadyClock::now();
      if (now >= deadline) return LockHeldError("lock '" + request.name + "' is held");
      if (now - last_keepalive >= keepalive_every) {
        const Fresh sent{SteadyClock::now(), SystemClock::now()};
        auto alive = Post("/v3/lease/keepalive", {{"ID", std::to_string(lease_id)}}, true);
        if (!alive.ok()) return alive.status();
        if (I64(alive->contains("result") ? (*alive)["result"] : *alive, "TTL") <= 0) {
          return UnavailableError("the waiting key of lock '" + request.name +
                                  "' lost its lease while the wait went on");
        }
        last_keepalive = now;
        *fresh = sent;
      }
      const auto chunk = std::min(std::chrono::duration_cast<milliseconds>(deadline - now),
                                  keepalive_every - std::chrono::duration_cast<milliseconds>(
                                                        now - last_keepalive));
      // The queue is read again after every change, also when the only key ahead of ours was
      // deleted: that read is what proves our own key still exists (its lease may have ended
      // while a paused member held the watch).
      if (first_waiter) {
        WaitForChange(dir, HeaderRevision(*reply) + 1, std::max(chunk, milliseconds(1)),
                      PrefixEnd(dir));
      } else {
        WaitForChange(predecessor->key, HeaderRevision(*reply) + 1,
                      std::max(chunk, milliseconds(1)));
      }
    }
  }

  // A waiter that now holds records its token as the name's last one, while its key exists.
  Status RecordToken(const std::string& name, const std::string& key, std::uint64_t token) {
    json txn = {{"compare", {CompareCreate(key, token)}},
                {"success", {OpRaiseLast(LastKey(name), token)}}};
    auto reply = Post("/v3/kv/txn", txn, /*idempotent=*/true);
    if (!reply.ok()) return reply.status();
    if (!Succeeded(*reply)) {
      return UnavailableError("the waiting key of lock '" + name +
                              "' vanished (its lease expired) as it was granted");
    }
    return OkStatus();
  }

  // A permit key that holds takes the lowest slot no other holder has: P slot/NAME/S is created
  // only if absent and only while the holder key (create revision `token`) exists, under the
  // holder's lease, in the transaction that also records the slot in the holder key's value.
  Result<std::uint32_t> ClaimSlot(const LockRequest& request, const std::string& owner,
                                  const std::string& key, std::uint64_t token,
                                  std::int64_t lease_id) {
    const std::string dir = SlotDir(request.name);
    for (int attempt = 0; attempt < kMaxTxnAttempts; ++attempt) {
      auto reply = Post("/v3/kv/range",
                        {{"key", Base64(dir)}, {"range_end", Base64(PrefixEnd(dir))},
                         {"keys_only", true}},
                        true);
      if (!reply.ok()) return reply.status();
      std::vector<bool> taken(request.limit, false);
      for (const Kv& kv : KvsOf(*reply)) {
        const std::string digits = kv.key.substr(dir.size());
        if (digits.empty() || digits.size() > 5 ||
            digits.find_first_not_of("0123456789") != std::string::npos) {
          continue;
        }
        const auto slot = static_cast<std::uint32_t>(std::stoul(digits));
        if (slot < request.limit) taken[slot] = true;
      }
      std::uint32_t slot = 0;
      while (slot < request.limit && taken[slot]) ++slot;
      if (slot == request.limit) {
        return InternalError("permit " + std::to_string(token) + " of lock '" + request.name +
                             "' holds but every slot is taken");
      }
      const std::string slot_key = SlotKey(request.name, slot);
      json txn = {{"compare", {CompareCreate(slot_key, 0), CompareCreate(key, token)}},
                  {"success",
                   {OpPut(slot_key, std::to_string(token), lease_id),
                    OpPut(key, HolderValue(owner, request.ttl, request.limit, slot), lease_id),
                    OpRaiseLast(LastKey(request.name), token)}},
                  {"failure", {OpRange(key)}}};
      auto claimed = Post("/v3/kv/txn", txn, /*idempotent=*/false);
      if (!claimed.ok()) return claimed.status();
      if (Succeeded(*claimed)) return slot;
      auto ranges = TxnRanges(*claimed);
      if (ranges.empty() || ranges[0].empty() || ranges[0][0].create_revision != token) {
        return UnavailableError("the permit key of lock '" + request.name +
                                "' vanished (its lease expired) while it claimed a slot");
      }
      // Another holder took that slot first: read the slots again.
    }
    return UnavailableError("claiming a slot of lock '" + request.name + "' kept conflicting");
  }

  // Blocks until `key` changes after `start_revision` (etcd watch), or `timeout` passes, or the
  // watch fails. It says nothing about what changed on purpose: even the deletion of the key is
  // no grant (an older key may still hold the lock, and the waiter's own key may be gone); the
  // caller reads the queue again (tests/etcd/etcd_queue_test.cc).
  // With `range_end`, it watches the deletions in [key, range_end) instead.
  void WaitForChange(const std::string& key, std::uint64_t start_revision, milliseconds timeout,
                     const std::string& range_end = {}) {
    SigpipeGuard no_sigpipe;
    const std::size_t index = CurrentEndpoint();
    auto client = NewClient(index);
    client->set_keep_alive(false);
    client->set_read_timeout(timeout);
    bool changed = false;
    httplib::Request req = WatchRequest(
        key, range_end, start_revision,
        [&](const json& result) {
          changed = result.contains("events") || result.contains("canceled");
          return !changed;
        },
        /*deletions_only=*/!range_end.empty());
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const auto start = SteadyClock::now();
    const bool ok = client->send(req, res, error);
    // A member that refuses the watch at once (down, no leader) must not make the caller spin.
    if (!changed && !ok && error != httplib::Error::Read && error != httplib::Error::Canceled) {
      Rotate(index);
      std::this_thread::sleep_until(std::min(start + timeout, start + milliseconds(100)));
    }
  }

  // Reads a fenced key's fence and data and, in strict mode, the lock's holders, in one
  // snapshot; refuses a stale token.
  Result<FenceSeen> ReadFence(std::string_view key, std::uint64_t token,
                              std::string_view lock_name) {
    const std::string base = prefix_ + "fence/" + std::string(key) + "/";
    auto ranges = Snapshot({OpRange(base, PrefixEnd(base))}, lock_name);
    if (!ranges.ok()) return ranges.status();
    FenceSeen seen;
    for (Kv& kv : (*ranges)[0]) {
      if (kv.key == FenceKey(key)) {
        seen.fence = std::strtoull(kv.value.c_str(), nullptr, 10);
        seen.fence_mod = kv.mod_revision;
      } else if (kv.key == DataKey(key)) {
        seen.has_data = true;
        seen.data = std::move(kv.value);
        seen.data_version = kv.version;
      }
    }
    if (token != 0 && token < seen.fence) {
      return StaleTokenError("token " + std::to_string(token) + " is older than token " +
                                 std::to_string(seen.fence) + " already seen for key '" +
                                 std::string(key) + "'",
                             seen.fence);
    }
    if (!lock_name.empty()) {
      auto holder = HolderWithToken(ranges->back(), token, lock_name, std::max(seen.fence, token));
      if (!holder.ok()) return holder.status();
      seen.holder_key = std::move(*holder);
    }
    return seen;
  }

  // One read-only snapshot of `reads` and, for a strict (lock-checked) call, the lock's holder
  // directory as the last range: what the fenced calls decide from, and later compare against.
  Result<std::vector<std::vector<Kv>>> Snapshot(std::vector<json> reads,
                                                std::string_view lock_name) {
    if (!lock_name.empty()) {
      const std::string dir = LockDir(lock_name);
      reads.push_back(OpRange(dir, PrefixEnd(dir), true));
    }
    auto reply = Post("/v3/kv/txn", {{"success", reads}}, true);
    if (!reply.ok()) return reply.status();
    auto ranges = TxnRanges(*reply);
    if (ranges.size() != reads.size()) {
      return InternalError("malformed etcd reply: " + reply->dump());
    }
    return ranges;
  }

  // The holder key of `lock_name` whose create revision is `token`, from a snapshot's holder
  // directory; a token that holds nothing is stale (`fence` is the fence the error reports).
  static Result<std::string> HolderWithToken(const std::vector<Kv>& holder_dir,
                                             std::uint64_t token, std::string_view lock_name,
                                             std::uint64_t fence) {
    for (const Kv& kv : HoldersOf(holder_dir)) {
      if (kv.create_revision == token) return kv.key;
    }
    return StaleTokenError("token " + std::to_string(token) + " is not a live holder of lock '" +
                               std::string(lock_name) + "'",
                           fence);
  }

  // What a fenced transaction compares: the fence is still the one read and, strict, the
  // holder key still exists with the token as its create revision.
  json FenceCompares(const FenceSeen& seen, std::string_view key, std::uint64_t token) const {
    json compares = json::array({CompareMod(FenceKey(key), seen.fence_mod)});
    if (!seen.holder_key.empty()) compares.push_back(CompareCreate(seen.holder_key, token));
    return compares;
  }

  void RevokeQuietly(std::int64_t lease_id) {
    if (lease_id == 0) return;
    Post("/v3/lease/revoke", {{"ID", std::to_string(lease_id)}}, true).status().IgnoreError();
  }

  std::unique_ptr<httplib::Client> Borrow(std::size_t index) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& idle = idle_[index];
      if (!idle.empty()) {
        auto client = std::move(idle.back());
        idle.pop_back();
        return client;
      }
    }
    return NewClient(index);
  }

  void Return(std::size_t index, std::unique_ptr<httplib::Client> client) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_[index].size() < kMaxIdlePerEndpoint) idle_[index].push_back(std::move(client));
  }

  const std::vector<Endpoint> endpoints_;
  const std::string prefix_;
  const std::string display_;
  std::atomic<std::size_t> current_{0};
  std::mutex mu_;
  std::vector<std::vector<std::unique_ptr<httplib::Client>>> idle_;  // guarded by mu_
  std::mutex own_mu_;
  std::unordered_map<std::uint64_t, Own> own_;  // guarded by own_mu_: token -> own holder key
};

EtcdSubscription::EtcdSubscription(EtcdLocker* locker, std::string key,
                                   std::function<void()> changed, std::uint64_t start_revision)
    : locker_(locker),
      key_(std::move(key)),
      changed_(std::move(changed)),
      next_revision_(start_revision),
      thread_([this] { Run(); }) {}

EtcdSubscription::~EtcdSubscription() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (active_ != nullptr) active_->stop();
  }
  cv_.notify_all();
  thread_.join();
}

void EtcdSubscription::Run() {
  SigpipeGuard no_sigpipe;
  while (true) {
    const std::size_t index = locker_->CurrentEndpoint();
    auto client = locker_->NewClient(index);
    client->set_keep_alive(false);
    client->set_read_timeout(std::chrono::hours(24));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      active_ = client.get();
    }
    httplib::Request req =
        WatchRequest(key_, PrefixEnd(key_), next_revision_, [&](const json& result) {
          if (result.contains("events")) {
            for (const auto& event : result["events"]) {
              if (event.contains("kv")) {
                next_revision_ = std::max(next_revision_, U64(event["kv"], "mod_revision") + 1);
              }
            }
            changed_();
          }
          std::lock_guard<std::mutex> lock(mu_);
          return !stop_;
        });
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    client->send(req, res, error);
    std::unique_lock<std::mutex> lock(mu_);
    active_ = nullptr;
    if (stop_) return;
    // The stream broke (a member died, a leader change): reconnect after a pause, and call
    // back once, since a change may have happened while no watch was open.
    locker_->Rotate(index);
    cv_.wait_for(lock, milliseconds(200), [this] { return stop_; });
    if (stop_) return;
    lock.unlock();
    changed_();
  }
}

Result<std::unique_ptr<Locker>> OpenEtcd(const BackendUrl& url) {
  const std::string usage = "; write etcd://HOST:PORT[,HOST:PORT…][?prefix=/ordo/]";
  if (!url.has_authority || url.host.empty()) {
    return InvalidArgumentError("etcd backend URL '" + url.Masked() + "' needs a host" + usage);
  }
  if (!url.path.empty() && url.path != "/") {
    return InvalidArgumentError("etcd backend URL '" + url.Masked() + "' has a path" + usage);
  }
  if (!url.user.empty() || !url.password.empty()) {
    return InvalidArgumentError("etcd backend URL '" + url.Masked() +
                                "' has credentials; etcd authentication is not supported");
  }
  ORDO_RETURN_IF_ERROR(url.CheckQuery({"prefix"}));
  std::string prefix = url.QueryOr("prefix", "/ordo/");
  if (prefix.empty() || prefix.front() != '/') {
    return InvalidArgumentError("etcd prefix '" + prefix + "' must start with '/'");
  }
  if (prefix.back() != '/') prefix += '/';
  // The registry splits "h1:p1,h2:p2" into url.hosts (url.host/url.port are only the first).
  std::vector<Endpoint> endpoints;
  for (const HostPort& item : url.hosts) {
    Endpoint e;
    e.host = item.host;
    e.port = 2379;
    if (!item.port.empty()) {
      const std::string& port = item.port;
      if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(port) == 0 || std::stoi(port) > 65535) {
        return InvalidArgumentError("etcd backend URL '" + url.Masked() + "' has a bad port '" +
                                    port + "' for host '" + item.host + "'");
      }
      e.port = std::stoi(port);
    }
    if (e.host.empty()) {
      return InvalidArgumentError("etcd backend URL '" + url.Masked() + "' has an empty host" +
                                  usage);
    }
    endpoints.push_back(std::move(e));
  }
  auto locker = std::make_unique<EtcdLocker>(std::move(endpoints), prefix, url.Masked());
  ORDO_RETURN_IF_ERROR(locker->Ping());
  return std::unique_ptr<Locker>(std::move(locker));
}

const bool kRegistered = RegisterBackend("etcd", &OpenEtcd);

}  // namespace
}  // namespace ordo
