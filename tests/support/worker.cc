// ordo-test-worker: a separate process that uses ordo the way a user's program would, driven by
// the multi-process tests. Each mode prints one line per event to stdout.
//
//   increment URL LOCK FILE N [nolock]   print "ready", wait for a line on stdin, then N times:
//                                        lock, read the integer in FILE, write +1, unlock
//   hold URL LOCK MODE TTL_MS            acquire (waiting), print "token T slot S", release on a
//                                        "release" line from stdin, exit without release on EOF;
//                                        MODE "permit/N" is one permit of a semaphore of limit N
//   cas URL KEY EXPECTED VALUE           print "won V" or "lost <code>"
//   fenced-rmw URL LOCK KEY N            N times: lock, fenced read of KEY, write +1, unlock
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "ordo/ordo.h"

namespace {

using namespace std::chrono_literals;

int Fail(const std::string& what, const ordo::Status& s) {
  std::fprintf(stderr, "worker: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 3;
}

long ReadCounter(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[64] = {};
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}

// Rewrites the number in place at a fixed width. Not O_TRUNC: ext4 (auto_da_alloc) flushes a
// truncated-and-rewritten file on close, ~4 ms a write, which made the multi-process tests slow.
void WriteCounter(const std::string& path, long value) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  char text[32];
  const int n = std::snprintf(text, sizeof(text), "%20ld\n", value);
  if (fd < 0 || pwrite(fd, text, static_cast<std::size_t>(n), 0) != n) std::abort();
  close(fd);
}

ordo::LockRequest Waiting(const std::string& name) {
  return {.name = name, .mode = ordo::LockMode::kExclusive, .ttl = 30s, .wait = 120s};
}

int Increment(ordo::Locker& locker, const std::string& name, const std::string& file, long n,
              bool use_lock) {
  // Start together: the parent releases every worker at once, after all have opened the
  // backend, so the workers really run concurrently (process start-up and connecting can take
  // longer than the whole loop, which would otherwise serialise them).
  std::cout << "ready" << std::endl;
  std::string go;
  if (!std::getline(std::cin, go)) return 4;
  for (long i = 0; i < n; ++i) {
    ordo::Lease lease;
    if (use_lock) {
      auto got = locker.Acquire(Waiting(name));
      if (!got.ok()) return Fail("acquire", got.status());
      lease = *got;
    }
    const long v = ReadCounter(file);
    sched_yield();  // widen the read-write window so that a missing lock shows as lost updates
    WriteCounter(file, v + 1);
    if (use_lock) {
      ordo::Status s = locker.Release(lease);
      if (!s.ok()) return Fail("release", s);
    }
  }
  std::cout << "done" << std::endl;
  return 0;
}

int Hold(ordo::Locker& locker, const std::string& name, const std::string& mode, long ttl_ms) {
  auto req = Waiting(name);
  req.mode = mode == "shared" ? ordo::LockMode::kShared : ordo::LockMode::kExclusive;
  if (mode.rfind("permit/", 0) == 0) req.limit = static_cast<std::uint32_t>(std::stoul(mode.substr(7)));
  req.ttl = std::chrono::milliseconds(ttl_ms);
  auto lease = locker.Acquire(req);
  if (!lease.ok()) return Fail("acquire", lease.status());
  std::cout << "token " << lease->token << " slot " << lease->slot << std::endl;
  std::string line;
  if (!std::getline(std::cin, line)) return 0;  // EOF: exit still holding (the OS cleans up)
  ordo::Status s = locker.Release(*lease);
  std::cout << (s.ok() ? std::string("released") : "release " + s.ToString()) << std::endl;
  return 0;
}

int Cas(ordo::Locker& locker, const std::string& key, std::uint64_t expected,
        const std::string& value) {
  auto r = locker.objects().CompareAndSwap(key, expected, value);
  if (r.ok()) {
    std::cout << "won " << *r << std::endl;
  } else {
    std::cout << "lost " << ordo::StatusCodeName(r.status().code()) << std::endl;
  }
  return 0;
}

int FencedRmw(ordo::Locker& locker, const std::string& name, const std::string& key, long n) {
  for (long i = 0; i < n; ++i) {
    auto lease = locker.Acquire(Waiting(name));
    if (!lease.ok()) return Fail("acquire", lease.status());
    auto cur = locker.fenced().Read(key, lease->token);
    long v = 0;
    if (cur.ok()) {
      v = std::strtol(cur->data.c_str(), nullptr, 10);
    } else if (cur.status().code() != ordo::StatusCode::kNotFound) {
      return Fail("fenced read", cur.status());
    }
    auto w = locker.fenced().Write(key, std::to_string(v + 1), lease->token);
    if (!w.ok()) return Fail("fenced write", w.status());
    ordo::Status s = locker.Release(*lease);
    if (!s.ok()) return Fail("release", s);
  }
  std::cout << "done" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ordo-test-worker MODE URL ...\n");
    return 2;
  }
  const std::string mode = argv[1];
  auto locker = ordo::Open(argv[2]);
  if (!locker.ok()) return Fail("open", locker.status());
  ordo::Locker& l = **locker;
  if (mode == "increment" && argc >= 6) {
    return Increment(l, argv[3], argv[4], std::atol(argv[5]),
                     !(argc >= 7 && std::string(argv[6]) == "nolock"));
  }
  if (mode == "hold" && argc == 6) return Hold(l, argv[3], argv[4], std::atol(argv[5]));
  if (mode == "cas" && argc == 6) return Cas(l, argv[3], std::strtoull(argv[4], nullptr, 10), argv[5]);
  if (mode == "fenced-rmw" && argc == 6) return FencedRmw(l, argv[3], argv[4], std::atol(argv[5]));
  std::fprintf(stderr, "ordo-test-worker: bad arguments for mode '%s'\n", mode.c_str());
  return 2;
}
