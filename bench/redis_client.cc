#include "redis_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ordo::bench {

std::unique_ptr<RedisClient> RedisClient::Connect(int port, std::string* error) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) {
    *error = std::string("connect to redis: ") + std::strerror(errno);
    return nullptr;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return std::unique_ptr<RedisClient>(new RedisClient(fd));
}

RedisClient::~RedisClient() { close(fd_); }

bool RedisClient::Send(const std::vector<std::string>& args, std::string* error) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  std::size_t sent = 0;
  while (sent < out.size()) {
    const ssize_t n = send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = std::string("send to redis: ") + std::strerror(errno);
      return false;
    }
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

// Appends what the socket has to the buffer (dropping what was consumed). False on EOF/error.
bool RedisClient::Fill() {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  char chunk[16384];
  ssize_t r;
  do {
    r = recv(fd_, chunk, sizeof(chunk), 0);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  buf_.append(chunk, static_cast<std::size_t>(r));
  return true;
}

bool RedisClient::ReadN(std::size_t n, std::string* out) {
  while (buf_.size() - pos_ < n) {
    if (!Fill()) return false;
  }
  out->assign(buf_, pos_, n);
  pos_ += n;
  return true;
}

bool RedisClient::ReadLine(std::string* line) {
  while (true) {
    const auto nl = buf_.find("\r\n", pos_);
    if (nl != std::string::npos) {
      line->assign(buf_, pos_, nl - pos_);
      pos_ = nl + 2;
      return true;
    }
    if (!Fill()) return false;
  }
}

bool RedisClient::Read(RedisReply* reply, std::string* error) {
  std::string line;
  if (!ReadLine(&line) || line.empty()) {
    *error = "redis closed the connection";
    return false;
  }
  reply->type = line[0];
  const std::string rest = line.substr(1);
  switch (reply->type) {
    case '+':
      reply->str = rest;
      return true;
    case '-':
      reply->str = rest;
      *error = "redis: " + rest;
      return false;
    case ':':
      reply->integer = std::strtoll(rest.c_str(), nullptr, 10);
      return true;
    case '$': {
      const long long n = std::strtoll(rest.c_str(), nullptr, 10);
      if (n < 0) {
        reply->nil = true;
        return true;
      }
      std::string data;
      if (!ReadN(static_cast<std::size_t>(n) + 2, &data)) {
        *error = "redis closed the connection";
        return false;
      }
      reply->str = data.substr(0, static_cast<std::size_t>(n));
      return true;
    }
    case '*': {
      const long long n = std::strtoll(rest.c_str(), nullptr, 10);
      if (n < 0) {
        reply->nil = true;
        return true;
      }
      reply->elements.resize(static_cast<std::size_t>(n));
      for (auto& e : reply->elements) {
        if (!Read(&e, error)) return false;
      }
      return true;
    }
    default:
      *error = "unexpected redis reply: " + line;
      return false;
  }
}

bool RedisClient::Command(const std::vector<std::string>& args, RedisReply* reply,
                          std::string* error) {
  return Send(args, error) && Read(reply, error);
}

RedisServer::RedisServer() {
  const std::string exe = FindProgram("redis-server");
  if (exe.empty()) {
    error_ = "redis-server not installed";
    return;
  }
  port_ = testing::FreeLoopbackPort();
  server_ = std::make_unique<Server>(std::vector<std::string>{
      exe, "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no", "--dir", dir_.path(), "--logfile", dir_.path() + "/redis.log",
      // 10,000 blocked BLPOP clients in the parked-waiters row, plus the client that pushes.
      "--maxclients", "10100"});
  if (!WaitForPort(port_, std::chrono::seconds(10))) {
    error_ = "redis-server did not start (see its log)";
  }
}

}  // namespace ordo::bench
