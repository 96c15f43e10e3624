#include "ordo/lock.h"

#include <unistd.h>

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <cstdio>
#include <random>

#include "ordo/duration.h"
#include "ordo/names.h"

namespace ordo {

std::string_view LockModeName(LockMode mode) {
  return mode == LockMode::kShared ? "shared" : "exclusive";
}

Status ValidateTtl(std::chrono::milliseconds ttl) {
  if (ttl < kMinTtl || ttl > kMaxTtl) {
    return InvalidArgumentError("ttl " + std::to_string(ttl.count()) +
                                "ms is out of range: it must be 100ms to 24h");
  }
  return OkStatus();
}

Status ValidateRequest(const LockRequest& request) {
  ORDO_RETURN_IF_ERROR(ValidateName(request.name));
  ORDO_RETURN_IF_ERROR(ValidateTtl(request.ttl));
  if (request.wait.count() < 0 || request.wait > kMaxWait) {
    return InvalidArgumentError("wait " + std::to_string(request.wait.count()) +
                                "ms is out of range: it must be 0 to 24h");
  }
  if (request.owner.size() > kMaxOwnerLength) {
    return InvalidArgumentError("owner is " + std::to_string(request.owner.size()) +
                                " bytes long; the limit is " + std::to_string(kMaxOwnerLength));
  }
  for (unsigned char c : request.owner) {
    if (c < 0x20 || c == 0x7f) {
      return InvalidArgumentError("owner contains a control character");
    }
  }
  if (request.limit < 1 || request.limit > kMaxLimit) {
    return InvalidArgumentError("limit " + std::to_string(request.limit) +
                                " is out of range: it must be 1 to " + std::to_string(kMaxLimit));
  }
  if (request.limit > 1 && request.mode == LockMode::kShared) {
    return InvalidArgumentError("limit " + std::to_string(request.limit) +
                                " needs exclusive mode: a semaphore's permits are exclusive");
  }
  return OkStatus();
}

std::unique_ptr<Subscription> Locker::Watch(std::string_view /*name*/,
                                            std::function<void()> /*changed*/) {
  return nullptr;
}

namespace {

// "host:pid:random-" computed once per process and again in a forked child, so DefaultOwner is
// a counter increment and no syscall on the acquire path.
struct OwnerPrefix {
  std::mutex mu;
  std::string prefix;  // guarded by mu
  pid_t pid = 0;       // guarded by mu
};

OwnerPrefix& Prefix() {
  static OwnerPrefix p;
  return p;
}

std::string ComputePrefix() {
  std::random_device rd;
  const std::uint64_t random = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char host[256] = "localhost";
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  host[sizeof(host) - 1] = '\0';
  char buf[400];
  std::snprintf(buf, sizeof(buf), "%s:%ld:%012llx-", host, static_cast<long>(getpid()),
                static_cast<unsigned long long>(random & 0xffffffffffffULL));
  return buf;
}

}  // namespace

std::string DefaultOwner() {
  static std::atomic<std::uint64_t> counter{0};
  static const bool kAtFork = [] {
    // A forked child must not reuse its parent's owner ids.
    pthread_atfork(nullptr, nullptr, [] { Prefix().pid = 0; });
    return true;
  }();
  (void)kAtFork;
  OwnerPrefix& p = Prefix();
  std::string out;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.pid == 0) {
      p.prefix = ComputePrefix();
      p.pid = getpid();
    }
    out = p.prefix;
  }
  out += std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1);
  return out;
}

}  // namespace ordo
