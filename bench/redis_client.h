// A minimal blocking Redis (RESP2) client and a throwaway redis-server: the baseline for the
// HTTP rows, as redis-benchmark would drive it (one connection per client, TCP_NODELAY).
// A RedisClient is used by one thread at a time.
#ifndef ORDO_BENCH_REDIS_CLIENT_H_
#define ORDO_BENCH_REDIS_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "procs.h"
#include "temp_dir.h"

namespace ordo::bench {

struct RedisReply {
  char type = 0;  // '+', '-', ':', '$', '*'
  bool nil = false;
  long long integer = 0;
  std::string str;
  std::vector<RedisReply> elements;
};

class RedisClient {
 public:
  // Connects to 127.0.0.1:port; nullptr (and *error) on failure.
  static std::unique_ptr<RedisClient> Connect(int port, std::string* error);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends one command and reads its reply. False on an I/O error or an error reply.
  bool Command(const std::vector<std::string>& args, RedisReply* reply, std::string* error);
  // Sends without reading (pipelining); read the replies with Read().
  bool Send(const std::vector<std::string>& args, std::string* error);
  bool Read(RedisReply* reply, std::string* error);

 private:
  explicit RedisClient(int fd) : fd_(fd) {}
  bool Fill();
  bool ReadLine(std::string* line);
  bool ReadN(std::size_t n, std::string* out);
  int fd_;
  std::string buf_;
  std::size_t pos_ = 0;
};

// redis-server on a free loopback port, no persistence; stopped by the destructor.
class RedisServer {
 public:
  // Starts it; check error() before use ("" when up).
  RedisServer();
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  pid_t pid() const { return server_ ? server_->pid() : -1; }

 private:
  testing::TempDir dir_;
  int port_ = 0;
  std::unique_ptr<Server> server_;
  std::string error_;
};

}  // namespace ordo::bench

#endif  // ORDO_BENCH_REDIS_CLIENT_H_
