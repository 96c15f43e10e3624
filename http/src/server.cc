// The REST server: start and stop. DESIGN.md's HTTP API over any ordo backend, on Boost.Beast
// and Boost.Asio.
//
// Threads. I/O threads (one per core, --threads) run the event loop: accept, read, parse,
// admit, write — never a backend call that may block. Backend calls, which block, run on a
// fixed worker pool sized for the backend (--workers); on inproc:, whose calls never block,
// the request-reply routes run on the I/O thread (ServerState::backend_inline). Each I/O
// thread runs an event loop of its own (an io_context with its own epoll set), and each
// connection lives on one of them, dealt round-robin at accept: a request is then read,
// handled and answered by one thread, with no hand-off between I/O threads (one shared loop
// run by several threads woke another thread for most events: about 4 futex calls and 4
// epoll_waits per request). The first loop also holds the acceptor, the parked waiters' and
// the long-polls' timers. A waiting acquire is parked as data (parking.h) and costs
// neither. Connections are bounded by --max-connections; past it a connection is answered 503
// and closed at once, never left unanswered.
//
// The parts: routes.h (the route table), admission.h (what is refused on the header alone),
// fields.h (tokens, JSON fields, entity tags), handlers.h (the lock and store handlers),
// connection.h (one connection's read/handle/write cycle), parking.h (waiters).
#include "ordo_http/server.h"

// GCC reports -Wnull-dereference inside Asio's scheduler, inlined from a system header into
// the io_context::run of this file: a false positive (the pointer is the calling thread's own
// context, never null there). Flow warnings are emitted after inlining, so the pragma has to
// cover the file.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include "connection.h"
#include "elections.h"
#include "ordo/registry.h"
#include "state.h"

namespace ordo::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

bool SplitListen(const std::string& listen, std::string* host, int* port) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  const std::string p = listen.substr(colon + 1);
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), *port);
  return !host->empty() && !p.empty() && ec == std::errc() && end == p.data() + p.size() &&
         *port >= 0 && *port <= 65535;
}

// Raises the descriptor limit to its hard maximum (each connection is a descriptor) and
// returns the number of connections it leaves room for.
std::size_t ConnectionRoom() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  constexpr rlim_t kReserve = 64;  // backend connections, files, the listener
  return lim.rlim_cur > kReserve * 2 ? static_cast<std::size_t>(lim.rlim_cur - kReserve) : 64;
}

constexpr std::string_view kBusyReply =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    "Connection: close\r\nContent-Length: 80\r\n\r\n"
    "{\"error\":\"unavailable\",\"message\":\"the server is at its connection limit; retry\"}";

}  // namespace

struct Server::Impl {
  // Destruction runs bottom-up: the acceptor, then the pool and the I/O context (whose pending
  // handlers own connections, which use the context and refer to `state`), then `state`.
  ServerState state;
  // Each run by one thread (concurrency hint 1): `io` by the first I/O thread, more_io[i] by
  // thread i + 1.
  asio::io_context io{1};
  std::vector<std::unique_ptr<asio::io_context>> more_io;
  // Keep each loop running while nothing is pending (a parked waiter has no I/O in flight),
  // until Stop.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  std::size_t next_loop = 0;  // the loop of the next connection; used by the accept handler only
  std::unique_ptr<asio::thread_pool> pool;
  std::optional<tcp::acceptor> acceptor;
  tcp protocol = tcp::v4();  // the acceptor's, set by Start
  std::string host;
  int port = 0;
  std::size_t io_threads = 1;
  std::size_t workers = 1;
  std::vector<std::thread> threads;
  std::mutex stop_mu;
  bool stopped = false;  // guarded by stop_mu

  ~Impl() {
    acceptor.reset();
    if (state.parking) state.parking->Shutdown();  // idempotent: Stop already did it
    state.events.Shutdown();  // idempotent: long-polls are answered, their timers cancelled
    if (state.elections) state.elections->Shutdown();
    if (pool) pool->join();
    pool.reset();
    state.parking.reset();  // its timers belong to `io`, which is destroyed next
  }
  void Accept();
  // The loop the next connection lives on, round-robin.
  asio::io_context& NextLoop() {
    const std::size_t i = next_loop++ % (more_io.size() + 1);
    return i == 0 ? io : *more_io[i - 1];
  }
};

void Server::Impl::Accept() {
  // The peer socket is made on the acceptor's own loop and only then moved to the loop it will
  // live on: a pending accept then holds nothing of another loop, so the loops can be
  // destroyed in any order (an accept still pending at Stop, with its socket on another loop,
  // was destroyed with `io` after that loop's socket service was gone).
  acceptor->async_accept([this](boost::system::error_code ec, tcp::socket accepted) {
    tcp::socket socket(asio::make_strand(NextLoop()));
    if (!ec) {
      const int fd = accepted.release(ec);
      if (!ec) socket.assign(protocol, fd, ec);
      if (ec) {
        if (fd >= 0 && !socket.is_open()) ::close(fd);
        return Accept();
      }
    }
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      // Out of descriptors or a transient error: keep accepting (after a pause for EMFILE,
      // so that a full table does not spin).
      if (ec == asio::error::no_descriptors) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return Accept();
    }
    if (state.stopping.load()) return;
    socket.set_option(tcp::no_delay(true), ec);
    if (state.connections.load() >= state.options.max_connections) {
      // Refused quickly and visibly: a short 503 into the socket's empty send buffer, then
      // close. Never silence.
      ::send(socket.native_handle(), kBusyReply.data(), kBusyReply.size(),
             MSG_NOSIGNAL | MSG_DONTWAIT);
      socket.shutdown(tcp::socket::shutdown_both, ec);
      socket.close(ec);
      state.metrics.Request(503);
      return Accept();
    }
    state.connections.fetch_add(1);
    std::make_shared<Connection>(std::move(socket), state)->Start();
    Accept();
  });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

int Server::port() const { return impl_->port; }

std::string Server::url() const {
  const bool v6 = impl_->host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + impl_->host + "]" : impl_->host) + ":" +
         std::to_string(impl_->port);
}

Result<std::unique_ptr<Server>> Server::Start(const ServeOptions& options,
                                              std::unique_ptr<Locker> backend) {
  // Build spdlog's registry (a lazily constructed singleton) before any server thread logs:
  // its construction inside the uninstrumented libspdlog is invisible to ThreadSanitizer.
  spdlog::default_logger_raw();
  auto impl = std::make_unique<Impl>();
  ServerState& state = impl->state;
  state.options = options;
  if (!SplitListen(options.listen, &impl->host, &impl->port)) {
    return InvalidArgumentError("listen address '" + options.listen + "' is not HOST:PORT");
  }
  if (options.max_body == 0) return InvalidArgumentError("--max-body must be at least 1 byte");
  if (options.max_wait.count() < 0 || options.max_wait > kMaxWait) {
    return InvalidArgumentError("--max-wait must be 0 to 24h");
  }
  if (options.io_timeout.count() <= 0 || options.keep_alive.count() <= 0) {
    return InvalidArgumentError("timeouts must be positive");
  }
  if (options.threads < 0 || options.workers < 0) {
    return InvalidArgumentError("--threads and --workers must not be negative");
  }
  if (options.max_connections == 0) {
    return InvalidArgumentError("--max-connections must be at least 1");
  }
  if (options.events_ring > ServeOptions::kMaxEventsRing) {
    return InvalidArgumentError("--events-ring must be 0 (off) to " +
                                std::to_string(ServeOptions::kMaxEventsRing));
  }
  state.events.SetCapacity(options.events_ring);
  const std::size_t room = ConnectionRoom();
  if (state.options.max_connections > room) {
    spdlog::warn("ordo serve: max connections lowered from {} to {} (descriptor limit)",
                 state.options.max_connections, room);
    state.options.max_connections = room;
  }
  std::size_t max_waiters = options.max_waiters;
  if (max_waiters == 0) max_waiters = state.options.max_connections;

  if (!options.auth_file.empty()) {
    auto auth = Authenticator::Load(options.auth_file);
    if (!auth.ok()) return auth.status();
    state.auth = std::move(*auth);
  }
  auto url = ParseBackendUrl(options.backend_url);
  if (backend) {
    state.backend_masked = url.ok() ? url->Masked() : "(in-process backend)";
    state.backend_scheme = url.ok() ? url->scheme : "custom";
    state.locker = std::move(backend);
  } else {
    if (!url.ok()) return url.status();
    auto opened = Open(options.backend_url);
    if (!opened.ok()) return opened.status();
    state.backend_masked = url->Masked();
    state.backend_scheme = url->scheme;
    state.locker = std::move(*opened);
  }

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  impl->io_threads = options.threads > 0 ? static_cast<std::size_t>(options.threads) : cores;
  impl->workers = options.workers > 0 ? static_cast<std::size_t>(options.workers)
                                      : ServeOptions::kDefaultWorkers;
  impl->pool = std::make_unique<asio::thread_pool>(impl->workers);
  asio::thread_pool* pool = impl->pool.get();
  state.run_on_worker = [pool](std::function<void()> fn) { asio::post(*pool, std::move(fn)); };
  state.backend_inline = state.backend_scheme == "inproc";
  state.io = &impl->io;
  state.elections = std::make_shared<ElectionWaits>();
  state.parking = std::make_unique<Parking>(*state.locker, impl->io, state.run_on_worker,
                                            max_waiters);

  boost::system::error_code ec;
  const auto address = asio::ip::make_address(impl->host == "localhost" ? "127.0.0.1" : impl->host, ec);
  if (ec) {
    return InvalidArgumentError("listen address '" + options.listen + "': '" + impl->host +
                                "' is not an IP address");
  }
  tcp::endpoint endpoint(address, static_cast<unsigned short>(impl->port));
  impl->acceptor.emplace(impl->io);
  impl->protocol = endpoint.protocol();
  impl->acceptor->open(endpoint.protocol(), ec);
  // SO_REUSEADDR (restart while old connections linger), but not SO_REUSEPORT, which would let
  // a second `ordo serve` bind the same port and silently share its traffic.
  if (!ec) impl->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(endpoint, ec);
  if (!ec) impl->acceptor->listen(SOMAXCONN, ec);
  if (ec) {
    impl->pool->join();
    return UnavailableError("cannot listen on " + options.listen + ": " + ec.message());
  }
  impl->port = impl->acceptor->local_endpoint().port();
  for (std::size_t i = 1; i < impl->io_threads; ++i) {
    impl->more_io.push_back(std::make_unique<asio::io_context>(1));
  }
  impl->Accept();
  impl->keep_running.emplace_back(impl->io.get_executor());
  for (auto& loop : impl->more_io) impl->keep_running.emplace_back(loop->get_executor());
  impl->threads.emplace_back([loop = &impl->io] { loop->run(); });
  for (auto& loop : impl->more_io) impl->threads.emplace_back([l = loop.get()] { l->run(); });

  spdlog::info(
      "ordo serve: listening on http://{}:{} with backend {} (auth {}, max body {} bytes, max "
      "wait {} ms, max connections {}, max waiters {}, {} I/O threads, {} workers)",
      impl->host, impl->port, state.backend_masked,
      state.auth ? std::to_string(state.auth->size()) + " token(s)" : std::string("off"),
      options.max_body, options.max_wait.count(), state.options.max_connections, max_waiters,
      impl->io_threads, impl->workers);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  Impl& impl = *impl_;
  impl.state.stopping.store(true);
  asio::post(impl.io, [&impl] {
    boost::system::error_code ignored;
    impl.acceptor->close(ignored);
  });
  // Waiters are answered 503 (on a worker, then written by their connection).
  impl.state.parking->Shutdown();
  impl.state.events.Shutdown();  // long-polls on /v1/events are answered now
  impl.state.elections->Shutdown();  // and those on /v1/elections/{name}
  // Requests in flight finish: the pool runs everything queued, then its threads exit.
  impl.pool->join();
  // Their replies are written (each connection closes after its reply while stopping); then
  // the connections still open — idle ones, slow ones — are closed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard<std::mutex> guard(impl.state.open_mu);
      for (auto& [ptr, weak] : impl.state.open) {
        if (auto c = weak.lock()) open.push_back(std::move(c));
      }
    }
    if (open.empty()) break;
    for (auto& c : open) c->Close();
    open.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl.keep_running.clear();
  impl.io.stop();
  for (auto& loop : impl.more_io) loop->stop();
  for (auto& t : impl.threads) t.join();
  impl.threads.clear();
}

int RunServer(const ServeOptions& options) {
  // Block the stop signals in every thread the server starts, and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  auto server = Server::Start(options);
  if (!server.ok()) {
    spdlog::error("ordo serve: {}", server.status().ToString());
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return 125;
  }
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  spdlog::info("ordo serve: signal {} received; stopping", sig);
  (*server)->Stop();
  spdlog::info("ordo serve: stopped");
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return 0;
}

}  // namespace ordo::http
