#include "operator.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "elections.h"
#include "fields.h"
#include "ordo/names.h"
#include "ordo_wire/wire.h"
#include "ui_page.h"

namespace ordo::http {
namespace {

std::string Str(boost::beast::string_view s) { return std::string(s.data(), s.size()); }

Response EventsReply(const Events& events, std::uint64_t after, const std::string& prefix) {
  json items = json::array();
  std::uint64_t last = after;
  for (const Event& e : events.After(after, prefix, kMaxEventsPerReply)) {
    last = e.id;
    items.push_back(EventToJson(e));
  }
  // `last` lets a client with a prefix skip what it did not match: the next call is after=last.
  if (items.empty()) last = std::max(after, events.last_id());
  return JsonReply(200, {{"events", std::move(items)}, {"last", last}});
}

// One parked long-poll: answered once, by the ring's wake-up or by the timer, whichever first.
struct EventWait {
  explicit EventWait(boost::asio::io_context& io) : timer(io) {}
  std::atomic<bool> answered{false};
  std::uint64_t handle = 0;  // written before the timer is armed
  boost::asio::steady_timer timer;  // used on the I/O context only
  ReplyFn reply;
};

}  // namespace

json EventToJson(const Event& e) {
  json out = {{"id", e.id},       {"time", wire::FormatTime(e.time)},
              {"type", e.type},   {"name", e.name},
              {"owner", e.owner}, {"token", e.token},
              {"slot", e.slot}};
  if (!e.by.empty()) out["by"] = e.by;
  if (e.election) out["election"] = true;
  return out;
}

void HandleEvents(ServerState& state, const Request& req, const ReplyFn& reply) {
  std::string error;
  auto params = ParseQuery(Str(req.target()), &error);
  if (!params) return reply(StatusReply(InvalidArgumentError(error)), {});
  std::uint64_t after = 0;
  std::uint64_t wait_ms = 0;
  std::string prefix;
  for (const auto& [k, v] : *params) {
    if (k == "prefix") {
      prefix = v;
      continue;
    }
    auto n = QueryNumber(k, v, static_cast<std::uint64_t>(state.options.max_wait.count()));
    if (!n.ok()) return reply(StatusReply(n.status()), {});
    if (k == "after") after = *n;
    if (k == "wait_ms") wait_ms = *n;
  }
  if (!prefix.empty()) {
    Status valid = ValidateName(prefix, "prefix");
    if (!valid.ok()) return reply(StatusReply(valid), {});
  }
  state.events.Sweep();
  if (wait_ms == 0 || state.io == nullptr) return reply(EventsReply(state.events, after, prefix), {});

  auto wait = std::make_shared<EventWait>(*state.io);
  wait->reply = reply;
  ServerState* s = &state;
  // Woken by Record (on whichever thread recorded) or by Shutdown: answer on a worker, and
  // cancel the timer on the I/O context, the only place it is touched.
  wait->handle = state.events.Wait(after, prefix, [s, wait, after, prefix] {
    if (wait->answered.exchange(true)) return;
    boost::asio::post(*s->io, [wait] { wait->timer.cancel(); });
    s->run_on_worker([s, wait, after, prefix] {
      wait->reply(EventsReply(s->events, after, prefix), {});
      wait->reply = nullptr;
    });
  });
  if (wait->handle == 0) {
    wait->answered.store(true);
    return reply(EventsReply(state.events, after, prefix), {});
  }
  boost::asio::post(*state.io, [s, wait, after, prefix, wait_ms] {
    wait->timer.expires_after(std::chrono::milliseconds(wait_ms));
    wait->timer.async_wait([s, wait, after, prefix](boost::system::error_code) {
      // Cancelled or elapsed: either way, answer unless the wake-up did.
      if (!s->events.Cancel(wait->handle)) return;
      if (wait->answered.exchange(true)) return;
      wait->reply(EventsReply(s->events, after, prefix), {});
      wait->reply = nullptr;
    });
    // The wake-up may have come before the timer was armed: its cancel ran first.
    if (wait->answered.load()) wait->timer.cancel();
  });
}

Response HandleUi() {
  Response res = BodyReply(200, std::string(kUiPage), "text/html; charset=utf-8");
  // The page is embedded: nothing is fetched from elsewhere, and the policy says so.
  res.set("Content-Security-Policy",
          "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
  res.set(bhttp::field::cache_control, "no-store");
  return res;
}

Response HandleRevoke(ServerState& state, const Route& route, const Request& req) {
  auto token = TokenBody(req.body());
  if (!token.ok()) return StatusReply(token.status());
  // The holder's owner and slot, for the event; the release below is what decides.
  Event event{.type = "revoked", .name = route.name, .token = *token};
  if (auto described = state.locker->Describe(route.name); described.ok()) {
    for (const Holder& h : described->holders) {
      if (h.token == *token) {
        event.owner = h.owner;
        event.slot = h.slot;
      }
    }
  }
  Lease lease;
  lease.name = route.name;
  lease.token = *token;
  // Release ends the lease at once and for good: the token is never a live holder again, so
  // its holder's renewals fail and its strict fenced writes (Fencing-Lock) are refused.
  Status released = state.locker->Release(lease);
  if (!released.ok()) return StatusReply(released);
  event.by = state.auth ? state.auth->Describe(route.auth_index) : std::string("auth off");
  spdlog::warn("ordo serve: token {} of '{}' revoked ({})", *token, route.name, event.by);
  state.events.Record(std::move(event));
  state.parking->Notify(route.name);
  state.elections->Notify(route.name);
  return JsonReply(200, {{"name", route.name}, {"token", *token}, {"revoked", true}});
}

}  // namespace ordo::http
