#include "elections.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "fields.h"
#include "ordo/election.h"
#include "ordo/names.h"
#include "ordo_wire/wire.h"

namespace ordo::http {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

// The election's JSON; the leader has "since" when it won through this server.
json ElectionStateToJson(ServerState& server, const ElectionState& state) {
  json leader = nullptr;
  if (state.leader) {
    leader = {{"candidate", state.leader->candidate},
              {"term", state.leader->term},
              {"expires_at", wire::FormatTime(state.leader->expires_at)}};
    if (auto since = server.elections->LeaderSince(state.name, state.leader->term)) {
      leader["since"] = wire::FormatTime(*since);
    }
  }
  return {{"name", state.name}, {"leader", std::move(leader)}, {"last_term", state.last_term}};
}

std::string Str(boost::beast::string_view s) { return std::string(s.data(), s.size()); }

// The election's state; a never-campaigned election is term 0 when `never_is_zero`.
Result<ElectionState> Current(ServerState& state, const std::string& name, bool never_is_zero) {
  auto leader = Election(*state.locker, name).Leader();
  if (!leader.ok() && never_is_zero && leader.status().code() == StatusCode::kNotFound) {
    return ElectionState{.name = name};
  }
  return leader;
}

Response StateReply(ServerState& server, const Result<ElectionState>& current) {
  if (!current.ok()) return StatusReply(current.status());
  return JsonReply(200, ElectionStateToJson(server, *current));
}

}  // namespace

// One parked long-poll. Its timer is touched on `strand` only; `mu` guards the rest.
class ElectionWait : public std::enable_shared_from_this<ElectionWait> {
 public:
  ElectionWait(ServerState& state, std::string name, std::uint64_t after,
               SteadyClock::time_point deadline, ReplyFn reply)
      : state_(state),
        name_(std::move(name)),
        after_(after),
        deadline_(deadline),
        strand_(asio::make_strand(*state.io)),
        timer_(strand_),
        reply_(std::move(reply)) {}

  const std::string& name() const { return name_; }

  // Subscribes, registers and checks once. Runs on a worker.
  void Start() {
    std::weak_ptr<ElectionWait> weak = weak_from_this();
    auto watch = state_.locker->Watch(name_, [weak] {
      // On a backend thread, which must not block: Wake only posts.
      if (auto self = weak.lock()) self->Wake();
    });
    const std::uint64_t id = state_.elections->Add(shared_from_this());
    {
      std::lock_guard<std::mutex> lock(mu_);
      id_ = id;
      watch_ = std::move(watch);
    }
    if (id == 0) return Answer(StatusReply(UnavailableError("the server is stopping")));
    Check();
  }

  // Something may have changed: re-check now (or right after the check in flight).
  void Wake() {
    std::lock_guard<std::mutex> lock(mu_);
    if (answered_) return;
    if (checking_) {
      again_ = true;
      return;
    }
    // Posted under mu_, so it runs after any Arm posted before it on the strand.
    asio::post(strand_, [self = shared_from_this()] { self->timer_.cancel(); });
  }

  // Answers 503 (the server stops).
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (answered_) return;
      stopping_ = true;
      // A check in flight sees stopping_ and answers, on the pool that Stop joins next.
      if (checking_) return;
      checking_ = true;  // nothing else answers now
      asio::post(strand_, [self = shared_from_this()] { self->timer_.cancel(); });
    }
    Answer(StatusReply(UnavailableError("the server is stopping")));
  }

 private:
  // Runs on a worker, with checking_ set.
  void Check() {
    auto current = Current(state_, name_, true);
    bool stop;
    bool watched;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop = stopping_;
      watched = watch_ != nullptr;
    }
    if (stop) return Answer(StatusReply(UnavailableError("the server is stopping")));
    const auto now = SteadyClock::now();
    if (!current.ok() || current->term() != after_ || now >= deadline_) {
      return Answer(StateReply(state_, current));
    }
    // Not yet: sleep until the deadline, the leader's expiry or the bounded re-check period.
    auto at = std::min(deadline_, now + (watched ? kUnnotifiedDeathRecheck : kNoWatchRecheck));
    if (current->leader) {
      const auto left = current->leader->expires_at - std::chrono::system_clock::now();
      at = std::min(at, now + std::chrono::duration_cast<SteadyClock::duration>(left) +
                            std::chrono::milliseconds(1));
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (again_ || stopping_) {
      again_ = false;
      state_.run_on_worker([self = shared_from_this()] { self->Check(); });
      return;
    }
    checking_ = false;
    asio::post(strand_, [self = shared_from_this(), at] {
      self->timer_.expires_at(at);
      self->timer_.async_wait([self](boost::system::error_code) {
        // Elapsed or cancelled by Wake: either way, check.
        {
          std::lock_guard<std::mutex> guard(self->mu_);
          if (self->answered_ || self->checking_) return;
          self->checking_ = true;
        }
        self->state_.run_on_worker([self] { self->Check(); });
      });
    });
  }

  void Answer(Response res) {
    std::unique_ptr<Subscription> watch;
    ReplyFn reply;
    std::uint64_t id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (answered_) return;
      answered_ = true;
      watch = std::move(watch_);
      reply = std::move(reply_);
      id = id_;
    }
    state_.elections->Remove(id);
    watch.reset();  // outside mu_: its destructor waits for a running callback
    reply(std::move(res), {});
  }

  ServerState& state_;
  const std::string name_;
  const std::uint64_t after_;
  const SteadyClock::time_point deadline_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;  // on strand_ only

  std::mutex mu_;
  std::uint64_t id_ = 0;                   // guarded by mu_; set by Start
  ReplyFn reply_;                          // guarded by mu_
  std::unique_ptr<Subscription> watch_;    // guarded by mu_
  // Guarded by mu_: a Check runs or is queued (from birth: Start checks first), so a Stop that
  // comes meanwhile leaves the answer to that Check.
  bool checking_ = true;
  bool again_ = false;                     // guarded by mu_: a wake-up came during the check
  bool answered_ = false;                  // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
};

std::uint64_t ElectionWaits::Add(const std::shared_ptr<ElectionWait>& wait) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return 0;
  const std::uint64_t id = next_++;
  waits_.emplace(id, wait);
  return id;
}

void ElectionWaits::Remove(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  waits_.erase(id);
}

void ElectionWaits::Notify(const std::string& name) {
  std::vector<std::shared_ptr<ElectionWait>> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, weak] : waits_) {
      if (auto w = weak.lock(); w && w->name() == name) woken.push_back(std::move(w));
    }
  }
  for (auto& w : woken) w->Wake();
}

void ElectionWaits::Shutdown() {
  std::vector<std::shared_ptr<ElectionWait>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    for (auto& [id, weak] : waits_) {
      if (auto w = weak.lock()) all.push_back(std::move(w));
    }
  }
  for (auto& w : all) w->Stop();
}

std::size_t ElectionWaits::waiting() {
  std::lock_guard<std::mutex> lock(mu_);
  return waits_.size();
}

void ElectionWaits::Remember(const Lease& won) {
  const auto now = std::chrono::system_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = campaigned_.find(won.name);
  if (it != campaigned_.end()) {
    // Tokens only grow: a late-answered older campaign does not move "since" back.
    if (won.token > it->second.term) it->second = {won.token, now};
    return;
  }
  if (campaigned_.size() < kMaxRemembered) campaigned_.emplace(won.name, Won{won.token, now});
}

std::vector<std::string> ElectionWaits::Names(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (auto it = campaigned_.lower_bound(prefix);
       it != campaigned_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.push_back(it->first);
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point> ElectionWaits::LeaderSince(
    const std::string& name, std::uint64_t term) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = campaigned_.find(name);
  if (it == campaigned_.end() || it->second.term != term) return std::nullopt;
  return it->second.at;
}

Response HandleElections(ServerState& state, const Request& req) {
  std::string error;
  auto params = ParseQuery(Str(req.target()), &error);
  if (!params) return StatusReply(InvalidArgumentError(error));
  std::string prefix;
  for (const auto& [k, v] : *params) {
    if (k == "prefix") prefix = v;
  }
  if (!prefix.empty()) {
    Status valid = ValidateName(prefix, "prefix");
    if (!valid.ok()) return StatusReply(valid);
  }
  json items = json::array();
  for (const std::string& name : state.elections->Names(prefix)) {
    auto current = Current(state, name, true);
    if (!current.ok()) return StatusReply(current.status());
    items.push_back(ElectionStateToJson(state, *current));
  }
  return JsonReply(200, {{"elections", std::move(items)}});
}

void HandleElection(ServerState& state, const Route& route, const Request& req,
                    const ReplyFn& reply) {
  std::string error;
  auto params = ParseQuery(Str(req.target()), &error);
  if (!params) return reply(StatusReply(InvalidArgumentError(error)), {});
  std::optional<std::uint64_t> after;
  std::uint64_t wait_ms = 0;
  for (const auto& [k, v] : *params) {
    auto n = QueryNumber(k, v, static_cast<std::uint64_t>(state.options.max_wait.count()));
    if (!n.ok()) return reply(StatusReply(n.status()), {});
    if (k == "after_term") after = *n;
    if (k == "wait_ms") wait_ms = *n;
  }
  if (!after) {
    if (wait_ms > 0) {
      return reply(StatusReply(InvalidArgumentError("wait_ms needs after_term (the term to wait "
                                                    "past)")),
                   {});
    }
    return reply(StateReply(state, Current(state, route.name, false)), {});
  }
  // HEAD answers what the GET would at once: it never waits.
  if (wait_ms == 0 || state.io == nullptr || req.method() == bhttp::verb::head) {
    return reply(StateReply(state, Current(state, route.name, true)), {});
  }
  auto wait = std::make_shared<ElectionWait>(
      state, route.name, *after, SteadyClock::now() + std::chrono::milliseconds(wait_ms), reply);
  wait->Start();
}

}  // namespace ordo::http
