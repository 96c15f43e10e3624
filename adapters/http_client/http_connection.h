// One keep-alive HTTP/1.1 client connection to `ordo serve`: the transport of the http://
// backend.
//
// A request is one write of a request built in a buffer the connection keeps, and its reply is
// read into a second kept buffer; neither is reallocated once it has grown to a request's
// size. The socket is non-blocking and written with MSG_NOSIGNAL (a reset peer is an error,
// never SIGPIPE); each wait is one poll() bounded by the call's deadline. A round trip is
// therefore a liveness peek, a send, a poll and a recv in the common case (cpp-httplib, which
// this replaces, made about ten system calls and several allocations per request).
//
// Replies: a status line, headers, and a body framed by Content-Length, chunked
// Transfer-Encoding, or the end of the connection; 1xx interim replies are skipped. Only the
// headers the backend reads are kept (Connection, ETag, Fencing-Token).
//
// Not thread-safe: one request at a time (the backend pools connections and lends each to one
// call).
#ifndef ORDO_ADAPTERS_HTTP_CLIENT_HTTP_CONNECTION_H_
#define ORDO_ADAPTERS_HTTP_CLIENT_HTTP_CONNECTION_H_

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace ordo::http_client {

using SteadyClock = std::chrono::steady_clock;

struct HttpReply {
  int status = 0;
  std::string body;
  bool close = false;  // the server closes the connection after this reply
  std::string etag;           // ETag, "" if absent
  std::string fencing_token;  // Fencing-Token, "" if absent
};

class HttpConnection {
 public:
  // Connects to host:port (a name, an IPv4 or an IPv6 address), within `timeout`. nullptr
  // with *error set when it cannot.
  static std::unique_ptr<HttpConnection> Connect(const std::string& host, int port,
                                                 std::chrono::milliseconds timeout,
                                                 std::string* error);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Whether the server has not closed the connection (nor sent anything unasked): a request
  // is only sent on a connection that passes this, since acquires are not safe to resend.
  bool Alive();

  // Sends `method target` with the given pre-formatted header lines ("Name: value\r\n" each;
  // Host, Content-Length and, with a body, Content-Type are added) and reads the reply. The
  // write must finish by `write_deadline`, the reply arrive by `read_deadline`. False with
  // *error set when no complete reply arrived; the connection must not be used again then.
  bool RoundTrip(std::string_view method, std::string_view target, std::string_view headers,
                 std::string_view body, std::string_view content_type,
                 SteadyClock::time_point write_deadline, SteadyClock::time_point read_deadline,
                 HttpReply* reply, std::string* error);

 private:
  HttpConnection(int fd, std::string host_header) : fd_(fd), host_header_(std::move(host_header)) {}
  // After a send or recv failed with `err`: true to try again (EINTR, or the socket became
  // ready for `events` by `deadline`); false with *error ("<failed>: why", or `timed_out`).
  bool AwaitAfter(int err, short events, SteadyClock::time_point deadline, const char* failed,
                  const char* timed_out, std::string* error);
  bool WriteAll(std::string_view data, SteadyClock::time_point deadline, std::string* error);
  // Reads more bytes into in_; false (with *error) on error, EOF (*eof) or deadline.
  bool ReadMore(SteadyClock::time_point deadline, bool* eof, std::string* error);
  bool ReadReply(SteadyClock::time_point deadline, HttpReply* reply, std::string* error);
  bool ReadChunked(std::size_t start, SteadyClock::time_point deadline, HttpReply* reply,
                   std::string* error);

  std::string_view In() const { return {in_.data(), in_len_}; }
  // Drops the first `n` bytes read.
  void Consume(std::size_t n);

  int fd_;
  const std::string host_header_;  // "Host: host:port\r\n"
  std::string out_;                // the request being written
  std::string in_;                 // in_[0, in_len_): bytes read and not yet consumed
  std::size_t in_len_ = 0;
};

}  // namespace ordo::http_client

#endif  // ORDO_ADAPTERS_HTTP_CLIENT_HTTP_CONNECTION_H_
