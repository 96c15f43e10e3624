#include "http_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace ordo::testing {

std::shared_ptr<Locker> OpenInproc() {
  auto opened = Open("inproc:");
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return opened.ok() ? std::shared_ptr<Locker>(std::move(*opened)) : nullptr;
}

std::unique_ptr<http::Server> StartServer(http::ServeOptions options,
                                          std::unique_ptr<Locker> backend) {
  if (options.backend_url.empty()) options.backend_url = "inproc:";
  options.listen = "127.0.0.1:0";
  auto started = http::Server::Start(options, std::move(backend));
  EXPECT_TRUE(started.ok()) << started.status().ToString();
  return started.ok() ? std::move(*started) : nullptr;
}

std::unique_ptr<httplib::Client> ClientFor(const http::Server& server) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", server.port());
  client->set_connection_timeout(std::chrono::seconds(5));
  client->set_read_timeout(std::chrono::seconds(30));
  client->set_tcp_nodelay(true);
  return client;
}

json BodyOf(const httplib::Result& r) {
  if (!r) return json();
  return json::parse(r->body, nullptr, false);
}

void ExpectError(const httplib::Result& r, int status, const std::string& code) {
  ASSERT_TRUE(r) << "no reply";
  EXPECT_EQ(r->status, status) << r->body;
  const json body = BodyOf(r);
  ASSERT_TRUE(body.is_object()) << r->body;
  EXPECT_EQ(body.value("error", ""), code) << r->body;
  EXPECT_FALSE(body.value("message", "").empty()) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
}

RawReply ParseReply(const std::string& bytes) {
  RawReply reply;
  const auto end = bytes.find("\r\n\r\n");
  if (end == std::string::npos || bytes.compare(0, 5, "HTTP/") != 0) return reply;
  std::size_t line_end = bytes.find("\r\n");
  const auto space = bytes.find(' ');
  const int status = std::atoi(bytes.c_str() + space + 1);
  std::size_t pos = line_end + 2;
  while (pos < end) {
    const auto eol = bytes.find("\r\n", pos);
    const std::string line = bytes.substr(pos, eol - pos);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string key = line.substr(0, colon);
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      reply.headers[key] = value;
    }
    pos = eol + 2;
  }
  const std::string body = bytes.substr(end + 4);
  auto cl = reply.headers.find("content-length");
  if (cl != reply.headers.end() && body.size() < std::stoul(cl->second)) return reply;
  reply.status = status;
  reply.body = cl != reply.headers.end() ? body.substr(0, std::stoul(cl->second)) : body;
  return reply;
}

RawReply RawRequest(int port, const std::string& request, std::chrono::milliseconds timeout) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return {};
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413) and close before reading everything
    sent += static_cast<std::size_t>(n);
  }
  std::string bytes;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    RawReply parsed = ParseReply(bytes);
    if (parsed.status != 0) {
      close(fd);
      return parsed;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return ParseReply(bytes);
}

void RaiseFdLimit() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
}

AuthFile::AuthFile(const std::string& text) {
  const char* tmp = std::getenv("TMPDIR");
  std::string name = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                     "/ordo-auth-XXXXXX";
  const int fd = mkstemp(name.data());
  EXPECT_GE(fd, 0) << "cannot create " << name;
  if (fd < 0) return;
  close(fd);
  path_ = name;
  std::ofstream out(path_);
  out << text;
  out.close();
  EXPECT_TRUE(out) << "cannot write " << path_;
}

AuthFile::~AuthFile() {
  if (!path_.empty()) unlink(path_.c_str());
}

double MetricValue(const http::Server& server, const std::string& series) {
  auto client = ClientFor(server);
  auto r = client->Get("/metrics");
  if (!r || r->status != 200) return -1;
  std::istringstream lines(r->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return -1;
}

bool WaitForMetric(const http::Server& server, const std::string& series, double value,
                   std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (MetricValue(server, series) != value) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace ordo::testing
