#include "connection.h"

#include <sys/socket.h>

#include <chrono>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "admission.h"
#include "handlers.h"

namespace ordo::http {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {
// How long a refused connection's unread bytes are discarded before it closes.
constexpr std::chrono::seconds kLinger{2};
}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, ServerState& state)
    : stream_(std::move(socket)), state_(state) {}

Connection::~Connection() {
  {
    std::lock_guard<std::mutex> lock(state_.open_mu);
    state_.open.erase(this);
  }
  state_.connections.fetch_sub(1);
}

void Connection::Start() {
  {
    std::lock_guard<std::mutex> lock(state_.open_mu);
    state_.open.emplace(this, weak_from_this());
  }
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
}

void Connection::Close() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->writing_) {
      self->closing_ = true;  // a reply (a waiter's 503, say) is on its way: finish it first
      return;
    }
    beast::error_code ignored;
    self->stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    self->stream_.close();
  });
}

void Connection::ReadHeader() {
  if (state_.stopping.load()) return stream_.close();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(state_.options.max_header_bytes));
  parser_->body_limit(state_.options.max_body);
  route_.reset();
  head_ = false;
  // One deadline for the whole header, however slowly its bytes arrive: a byte does not
  // extend it.
  stream_.expires_after(first_ ? state_.options.io_timeout
                               : std::chrono::duration_cast<std::chrono::milliseconds>(
                                     state_.options.keep_alive));
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->OnHeader(ec);
                           });
}

void Connection::OnHeader(beast::error_code ec) {
  first_ = false;
  if (ec == bhttp::error::body_limit) {  // the parser checks a declared Content-Length early
    return Send(ErrorReply(413, "payload_too_large",
                           "the body is larger than the limit of " +
                               std::to_string(state_.options.max_body) + " bytes (--max-body)"),
                true);
  }
  if (ec == bhttp::error::header_limit) {
    return Send(ErrorReply(431, "invalid_argument",
                           "the request line and headers are over the limit of " +
                               std::to_string(state_.options.max_header_bytes) + " bytes"),
                true);
  }
  if (ec) {
    // A peer that closed or went silent gets nothing; a peer that sent bytes that are not
    // HTTP/1.1 is told so before the connection closes.
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == bhttp::error::partial_message ||
        ec.category() == asio::error::get_system_category()) {
      return stream_.close();
    }
    std::string what = ec.message();
    if (ec == bhttp::error::bad_field) what = "a header line has no colon or a bad name";
    if (ec == bhttp::error::bad_content_length) what = "conflicting or bad Content-Length";
    return Send(ErrorReply(400, "invalid_argument", "malformed HTTP request: " + what), true);
  }
  const Request& header = parser_->get();
  head_ = header.method() == bhttp::verb::head;
  Admission admission = Admit(state_, header);
  if (admission.refusal) return Send(std::move(*admission.refusal), true);
  route_ = std::move(admission.route);
  if (parser_->is_done()) return Run();
  // The body has a deadline of its own.
  stream_.expires_after(state_.options.io_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code body_ec, std::size_t) {
                      self->OnBody(body_ec);
                    });
}

void Connection::OnBody(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    return Send(ErrorReply(413, "payload_too_large",
                           "the body is larger than " + std::to_string(state_.options.max_body) +
                               " bytes (--max-body)"),
                true);
  }
  if (ec) return stream_.close();  // timed out or gone mid-body: nothing runs
  Run();
}

namespace {

// The routes that are one backend call and a reply, never a wait of their own (a waiting
// acquire or campaign is parked, and answered from a worker).
bool RequestReply(RouteId id) {
  switch (id) {
    case RouteId::kDescribe:
    case RouteId::kAcquire:
    case RouteId::kRenew:
    case RouteId::kRelease:
    case RouteId::kFenced:
    case RouteId::kObject:
    case RouteId::kCampaign:
    case RouteId::kElectionRenew:
    case RouteId::kResign:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Connection::Run() {
  stream_.expires_never();  // a parked acquire may wait long; its own deadline answers it
  auto self = shared_from_this();
  // Dispatched: a reply made on this connection's strand (an inline handler) is sent at once;
  // one from a worker or a timer is queued to the strand.
  ReplyFn reply = [self](Response res, std::function<void()> undelivered) {
    asio::dispatch(self->stream_.get_executor(),
                   [self, res = std::move(res), undelivered = std::move(undelivered)]() mutable {
                     self->Send(std::move(res), false, std::move(undelivered));
                   });
  };
  if (!route_->backend || (state_.backend_inline && RequestReply(route_->id))) {
    // Answered from memory (health, metrics, info; every call of an inline backend): on this
    // I/O thread.
    return Handle(state_, *route_, parser_->get(), std::move(reply));
  }
  state_.run_on_worker([self, reply = std::move(reply)]() mutable {
    Handle(self->state_, *self->route_, self->parser_->get(), std::move(reply));
  });
}

bool Connection::PeerClosed() {
  char byte;
  const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void Connection::Send(Response res, bool close, std::function<void()> undelivered) {
  if (undelivered && (!stream_.socket().is_open() || (buffer_.size() == 0 && PeerClosed()))) {
    undelivered();
    return stream_.close();
  }
  const bool keep_alive = !close && !state_.stopping.load() && parser_ &&
                          parser_->is_done() && parser_->get().keep_alive();
  res.version(parser_ ? parser_->get().version() : 11);
  if (parser_ && parser_->get().version() < 10) res.version(11);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  if (head_) {
    // HEAD: the header of the GET, Content-Length included, and no body.
    const auto length = res.body().size();
    res.body().clear();
    res.content_length(length);
  }
  state_.metrics.Request(res.result_int());
  if (spdlog::should_log(spdlog::level::debug)) {  // the strings only when they are logged
    spdlog::debug("{} {} -> {}", parser_ ? std::string(parser_->get().method_string()) : "-",
                  parser_ ? std::string(parser_->get().target()) : "-", res.result_int());
  }
  response_ = std::move(res);
  writing_ = true;
  stream_.expires_after(state_.options.io_timeout);
  bhttp::async_write(stream_, response_,
                     [self = shared_from_this(), keep_alive,
                      undelivered = std::move(undelivered)](beast::error_code ec, std::size_t) {
                       if (ec && undelivered) undelivered();
                       self->OnWritten(ec, !keep_alive);
                     });
}

void Connection::OnWritten(beast::error_code ec, bool close) {
  writing_ = false;
  if (ec || closing_ || state_.stopping.load()) return stream_.close();
  if (close) return LingerClose();
  ReadHeader();  // the next request may already be in buffer_ (pipelining)
}

void Connection::LingerClose() {
  beast::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  stream_.expires_after(kLinger);
  auto discard = std::make_shared<std::array<char, 16 * 1024>>();
  // Reads and drops until EOF, an error or the linger deadline; none of it is parsed.
  struct Drain {
    std::shared_ptr<Connection> self;
    std::shared_ptr<std::array<char, 16 * 1024>> buf;
    void operator()(beast::error_code ec, std::size_t) {
      if (ec) return self->stream_.close();
      self->stream_.async_read_some(asio::buffer(*buf), std::move(*this));
    }
  };
  buffer_.clear();
  stream_.async_read_some(asio::buffer(*discard), Drain{shared_from_this(), discard});
}

}  // namespace ordo::http
