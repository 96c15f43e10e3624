// ordo-etcd-fault-worker URL LOCK DIR SECONDS TTL_MS — one process of the etcd fault test.
//
// Prints "ready", waits for a line on stdin, then for SECONDS acquires LOCK (waiting), checks
// and updates two plain files in DIR under it, and releases. The files make violations visible
// across processes:
//   DIR/holder   "PID EXPIRES_MS" of the holder inside the critical section (EXPIRES_MS: its
//                lease's expires_at, system clock, ms since the epoch), 0 outside: another
//                pid seen on entry or on exit is a mutual-exclusion violation — unless the
//                other holder's lease had expired by then (a holder stalled past its TTL may
//                overlap the next one: DESIGN.md), which is counted as an overrun instead;
//   DIR/counter  "VALUE TOKEN": each holder adds one and writes its token; a token not larger
//                than the one it finds is a token-order violation.
// kUnavailable (the member it talks to is down, or no leader yet) is retried after 50 ms.
// Last line: "done acquired=A violations=V unavailable=U lost=L overran=O".
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "ordo/ordo.h"

namespace {

std::string ReadAll(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[128] = {};
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Fixed width, rewritten in place (no O_TRUNC: see tests/support/worker.cc).
void WriteAll(const std::string& path, const std::string& text) {
  char buf[64];
  const int n = std::snprintf(buf, sizeof(buf), "%-60s\n", text.c_str());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || pwrite(fd, buf, static_cast<std::size_t>(n), 0) != n) std::abort();
  close(fd);
}

long long EpochMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc != 6) {
    std::fprintf(stderr, "usage: ordo-etcd-fault-worker URL LOCK DIR SECONDS TTL_MS\n");
    return 2;
  }
  const std::string lock = argv[2];
  const std::string dir = argv[3];
  const auto run_for = std::chrono::seconds(std::atol(argv[4]));
  const auto ttl = std::chrono::milliseconds(std::atol(argv[5]));
  auto opened = ordo::Open(argv[1]);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 3;
  }
  ordo::Locker& locker = **opened;
  const std::string me = std::to_string(getpid());
  std::cout << "ready" << std::endl;
  std::string go;
  if (!std::getline(std::cin, go)) return 4;
  long acquired = 0, violations = 0, unavailable = 0, lost = 0, overran = 0;
  const auto end = std::chrono::steady_clock::now() + run_for;
  while (std::chrono::steady_clock::now() < end) {
    auto lease = locker.Acquire({.name = lock, .ttl = ttl, .wait = 10s});
    if (!lease.ok()) {
      if (lease.status().code() == ordo::StatusCode::kUnavailable) ++unavailable;
      std::this_thread::sleep_for(50ms);
      continue;
    }
    ++acquired;
    long other = 0;
    long long other_expires_ms = 0;
    std::sscanf(ReadAll(dir + "/holder").c_str(), "%ld %lld", &other, &other_expires_ms);
    if (other != 0) {
      // Judged on this machine's clock, which also computed the other holder's expires_at (a
      // lower bound of etcd's expiry: counted from before the grant or keep-alive was sent).
      if (EpochMs(std::chrono::system_clock::now()) > other_expires_ms) {
        ++overran;
        std::fprintf(stderr, "overrun: pid %ld still inside past its expiry at entry of token %llu\n",
                     other, static_cast<unsigned long long>(lease->token));
      } else {
        ++violations;
        std::fprintf(stderr, "violation: pid %ld inside on entry of token %llu\n", other,
                     static_cast<unsigned long long>(lease->token));
      }
    }
    WriteAll(dir + "/holder", me + " " + std::to_string(EpochMs(lease->expires_at)));
    const std::string counter = ReadAll(dir + "/counter");
    long value = 0;
    unsigned long long last_token = 0;
    std::sscanf(counter.c_str(), "%ld %llu", &value, &last_token);
    if (lease->token <= last_token) {
      ++violations;
      std::fprintf(stderr, "violation: token %llu after %llu\n",
                   static_cast<unsigned long long>(lease->token), last_token);
    }
    sched_yield();
    WriteAll(dir + "/counter", std::to_string(value + 1) + " " + std::to_string(lease->token));
    if (std::atol(ReadAll(dir + "/holder").c_str()) != getpid()) {
      if (std::chrono::system_clock::now() > lease->expires_at) {
        ++overran;
        std::fprintf(stderr, "overrun: token %llu was inside past its expiry\n",
                     static_cast<unsigned long long>(lease->token));
      } else {
        ++violations;
        std::fprintf(stderr, "violation: another holder inside during token %llu\n",
                     static_cast<unsigned long long>(lease->token));
      }
    }
    WriteAll(dir + "/holder", "0");
    // A release that meets an outage is retried; the lease expires by itself at worst.
    for (int attempt = 0; attempt < 50; ++attempt) {
      ordo::Status s = locker.Release(*lease);
      if (s.ok()) break;
      if (s.code() == ordo::StatusCode::kLeaseLost) {
        ++lost;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  std::cout << "done acquired=" << acquired << " violations=" << violations
            << " unavailable=" << unavailable << " lost=" << lost << " overran=" << overran
            << std::endl;
  return 0;
}
