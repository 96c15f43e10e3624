#include "http_connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace ordo::http_client {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kReadChunk = 16 * 1024;
// A reply's header block beyond this is not a server we speak to.
constexpr std::size_t kMaxHeaderBytes = 64 * 1024;

std::string Errno(int err) { return std::strerror(err); }

// Milliseconds left until `deadline` for poll(): at least 0, rounded up.
int PollTimeout(SteadyClock::time_point deadline) {
  const auto left = deadline - SteadyClock::now();
  if (left <= SteadyClock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<milliseconds>(left).count();
  return static_cast<int>(std::min<std::int64_t>(ms, 1 << 30));
}

// Waits for `events` on `fd` until `deadline`. 1 ready, 0 timed out, -1 error (errno).
int Wait(int fd, short events, SteadyClock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, PollTimeout(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && SteadyClock::now() < deadline) continue;  // woke early (rounding)
    return n < 0 ? -1 : n;
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool ParseSize(std::string_view s, int base, std::size_t* out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::unique_ptr<HttpConnection> HttpConnection::Connect(const std::string& host, int port,
                                                        milliseconds timeout,
                                                        std::string* error) {
  const auto deadline = SteadyClock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int gai = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (gai != 0) {
    *error = std::string("cannot resolve '") + host + "': " + ::gai_strerror(gai);
    return nullptr;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addrs(found, &::freeaddrinfo);
  *error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                            a->ai_protocol);
    if (fd < 0) {
      *error = Errno(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      const int ready = Wait(fd, POLLOUT, deadline);
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (ready == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0) {
        errno = soerr;
        rc = soerr == 0 ? 0 : -1;
      } else {
        if (ready == 0) errno = ETIMEDOUT;
        rc = -1;
      }
    }
    if (rc != 0) {
      *error = Errno(errno);
      ::close(fd);
      continue;
    }
    // Each request is one write, but the reply must not wait for the ACK of the previous one.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const bool v6 = host.find(':') != std::string::npos;
    std::string host_header = "Host: " + (v6 ? "[" + host + "]" : host) + ":" + service + "\r\n";
    error->clear();
    return std::unique_ptr<HttpConnection>(new HttpConnection(fd, std::move(host_header)));
  }
  return nullptr;
}

HttpConnection::~HttpConnection() { ::close(fd_); }

void HttpConnection::Consume(std::size_t n) {
  std::memmove(in_.data(), in_.data() + n, in_len_ - n);
  in_len_ -= n;
}

bool HttpConnection::Alive() {
  if (in_len_ != 0) return false;  // bytes nobody asked for: not a state to send in
  char byte;
  const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

bool HttpConnection::RoundTrip(std::string_view method, std::string_view target,
                               std::string_view headers, std::string_view body,
                               std::string_view content_type,
                               SteadyClock::time_point write_deadline,
                               SteadyClock::time_point read_deadline, HttpReply* reply,
                               std::string* error) {
  out_.clear();
  out_.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  out_.append(host_header_);
  out_.append(headers);
  if (!body.empty() || method == "POST" || method == "PUT") {
    out_.append("Content-Type: ").append(content_type).append("\r\n");
    char length[24];
    const auto [end, ec] = std::to_chars(length, length + sizeof length, body.size());
    out_.append("Content-Length: ").append(length, end).append("\r\n");
  }
  out_.append("\r\n").append(body);
  return WriteAll(out_, write_deadline, error) && ReadReply(read_deadline, reply, error);
}

bool HttpConnection::AwaitAfter(int err, short events, SteadyClock::time_point deadline,
                                const char* failed, const char* timed_out, std::string* error) {
  if (err == EINTR) return true;
  if (err != EAGAIN && err != EWOULDBLOCK) {
    *error = std::string(failed) + ": " + Errno(err);
    return false;
  }
  const int ready = Wait(fd_, events, deadline);
  if (ready <= 0) {
    *error = ready == 0 ? std::string(timed_out) : std::string(failed) + ": " + Errno(errno);
    return false;
  }
  return true;
}

bool HttpConnection::WriteAll(std::string_view data, SteadyClock::time_point deadline,
                              std::string* error) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (!AwaitAfter(errno, POLLOUT, deadline, "write failed", "write timed out", error)) {
      return false;
    }
  }
  return true;
}

bool HttpConnection::ReadMore(SteadyClock::time_point deadline, bool* eof, std::string* error) {
  *eof = false;
  while (true) {
    if (in_.size() - in_len_ < kReadChunk) in_.resize(in_len_ + kReadChunk);  // grown once
    const ssize_t n = ::recv(fd_, in_.data() + in_len_, in_.size() - in_len_, 0);
    if (n > 0) {
      in_len_ += static_cast<std::size_t>(n);
      return true;
    }
    if (n == 0) {
      *eof = true;
      *error = "the server closed the connection";
      return false;
    }
    if (!AwaitAfter(errno, POLLIN, deadline, "read failed", "timed out waiting for the reply",
                    error)) {
      return false;
    }
  }
}

bool HttpConnection::ReadReply(SteadyClock::time_point deadline, HttpReply* reply,
                               std::string* error) {
  bool eof = false;
  while (true) {
    std::size_t header_end;
    while ((header_end = In().find("\r\n\r\n")) == std::string::npos) {
      if (in_len_ > kMaxHeaderBytes) {
        *error = "the reply's header is over 64 KiB";
        return false;
      }
      if (!ReadMore(deadline, &eof, error)) return false;
    }
    const std::string_view head(in_.data(), header_end + 2);  // through the last line's CRLF
    // Status line: HTTP/1.x SSS reason
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    int status = 0;
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
        status_line[8] != ' ' ||
        std::from_chars(status_line.data() + 9, status_line.data() + 12, status).ptr !=
            status_line.data() + 12) {
      *error = "not an HTTP/1.x reply: '" + std::string(status_line.substr(0, 80)) + "'";
      return false;
    }
    const bool http10 = status_line[7] == '0';
    *reply = HttpReply{};
    reply->status = status;
    reply->close = http10;
    bool chunked = false;
    bool has_length = false;
    std::size_t length = 0;
    for (std::size_t pos = line_end + 2; pos < head.size();) {
      const std::size_t end = head.find("\r\n", pos);
      const std::string_view line = head.substr(pos, end - pos);
      pos = end + 2;
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = Trim(line.substr(colon + 1));
      if (EqualsIgnoreCase(name, "content-length")) {
        if (!ParseSize(value, 10, &length)) {
          *error = "bad Content-Length '" + std::string(value) + "'";
          return false;
        }
        has_length = true;
      } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
        chunked = value.size() >= 7 && EqualsIgnoreCase(value.substr(value.size() - 7), "chunked");
      } else if (EqualsIgnoreCase(name, "connection")) {
        if (EqualsIgnoreCase(value, "close")) reply->close = true;
        if (EqualsIgnoreCase(value, "keep-alive")) reply->close = false;
      } else if (EqualsIgnoreCase(name, "etag")) {
        reply->etag.assign(value);
      } else if (EqualsIgnoreCase(name, "fencing-token")) {
        reply->fencing_token.assign(value);
      }
    }
    const std::size_t body_start = header_end + 4;
    if (status >= 100 && status < 200) {  // interim: the real reply follows
      Consume(body_start);
      continue;
    }
    if (status == 204 || status == 304) {
      Consume(body_start);
      return true;
    }
    if (chunked) return ReadChunked(body_start, deadline, reply, error);
    if (has_length) {
      while (in_len_ - body_start < length) {
        if (!ReadMore(deadline, &eof, error)) return false;
      }
      reply->body.assign(In().substr(body_start, length));
      Consume(body_start + length);
      return true;
    }
    // Neither: the body runs to the end of the connection.
    while (ReadMore(deadline, &eof, error)) {
    }
    if (!eof) return false;
    error->clear();
    reply->body.assign(In().substr(body_start));
    Consume(in_len_);
    reply->close = true;
    return true;
  }
}

bool HttpConnection::ReadChunked(std::size_t start, SteadyClock::time_point deadline,
                                 HttpReply* reply, std::string* error) {
  bool eof = false;
  std::size_t pos = start;
  while (true) {
    std::size_t line_end;
    while ((line_end = In().find("\r\n", pos)) == std::string::npos) {
      if (!ReadMore(deadline, &eof, error)) return false;
    }
    std::string_view size_text(in_.data() + pos, line_end - pos);
    size_text = Trim(size_text.substr(0, size_text.find(';')));  // chunk extensions ignored
    std::size_t size = 0;
    if (!ParseSize(size_text, 16, &size)) {
      *error = "bad chunk size in the reply";
      return false;
    }
    pos = line_end + 2;
    if (size == 0) {
      // Trailers, if any, end with an empty line.
      std::size_t end;
      while ((end = In().find("\r\n", pos)) == std::string::npos || end != pos) {
        if (end != std::string::npos) {
          pos = end + 2;
          continue;
        }
        if (!ReadMore(deadline, &eof, error)) return false;
      }
      Consume(pos + 2);
      return true;
    }
    while (in_len_ < pos + size + 2) {
      if (!ReadMore(deadline, &eof, error)) return false;
    }
    reply->body.append(In().substr(pos, size));
    pos += size + 2;
  }
}

}  // namespace ordo::http_client
