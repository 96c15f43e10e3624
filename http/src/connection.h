// One client connection of the REST server: read a request, admit it, run it, write the reply,
// read the next — every step a completion handler on the connection's strand, with a deadline
// for each step, so that a slow peer is closed by its deadline and never holds a thread.
//
//   header: the whole request line and header block within options.io_timeout (10 s) for the
//           first request, options.keep_alive for the next ones; 16 KiB at most (431);
//   admission: on the header alone (admission.h); a refused request is answered, the
//           connection stops reading (nothing after it is parsed, let alone executed) and
//           closes once the reply is written;
//   body:   its own deadline (options.io_timeout), at most --max-body bytes;
//   reply:  requests are answered one at a time, in order, so pipelined requests (already in
//           the read buffer) are answered in the order they were sent.
//
// Owned by the completion handlers that refer to it (shared_from_this); thread-safe through
// its strand: Close() may be called from any thread.
#ifndef ORDO_HTTP_SRC_CONNECTION_H_
#define ORDO_HTTP_SRC_CONNECTION_H_

#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "reply.h"
#include "routes.h"
#include "state.h"

namespace ordo::http {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::ip::tcp::socket socket, ServerState& state);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading requests.
  void Start();
  // Closes the connection (server stop); pending operations complete with an error.
  void Close();

 private:
  void ReadHeader();
  void OnHeader(boost::beast::error_code ec);
  void OnBody(boost::beast::error_code ec);
  void Run();
  // Sends `res` for the current request; `close` ends the connection after it.
  void Send(Response res, bool close, std::function<void()> undelivered = {});
  void OnWritten(boost::beast::error_code ec, bool close);
  // Half-closes, then discards what the peer still sends for a short while before closing, so
  // that the reply is not lost to a reset while the peer is still sending a body we refused.
  void LingerClose();
  // Whether the peer has closed its end (EOF waiting in the socket).
  bool PeerClosed();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  ServerState& state_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<Route> route_;
  Response response_;  // kept alive while it is written
  bool first_ = true;
  bool head_ = false;     // the current request is HEAD
  bool writing_ = false;  // a reply is being written
  bool closing_ = false;  // Close() came while writing: close once it is written
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_CONNECTION_H_
