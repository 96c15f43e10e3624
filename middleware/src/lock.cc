#include "ordo/lock.h"

#include <unistd.h>

#include <pthread.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <random>

#include "default_owner.h"
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

// "host:pid:random-" computed once per process and again in a forked child. Each thread keeps a
// copy tagged with the fork generation it was computed in, so DefaultOwner takes no lock and
// makes no syscall on the acquire path: one string built to its final size and a counter.
struct OwnerPrefix {
  std::mutex mu;
  std::string prefix;           // guarded by mu
  std::uint64_t generation = 0;  // the fork generation `prefix` belongs to; guarded by mu
};

OwnerPrefix& Prefix() {
  static OwnerPrefix p;
  return p;
}

// Bumped in every forked child: a child must not reuse its parent's owner ids.
std::atomic<std::uint64_t> fork_generation{1};

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

// The process's prefix for the current fork generation (the slow path, once per thread and
// fork).
std::string SharedPrefix(std::uint64_t generation) {
  OwnerPrefix& p = Prefix();
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.generation != generation) {
    p.prefix = ComputePrefix();
    p.generation = generation;
  }
  return p.prefix;
}

}  // namespace

namespace internal {

void AssignDefaultOwner(std::string* out) {
  static std::atomic<std::uint64_t> counter{0};
  static const bool kAtFork = [] {
    pthread_atfork(nullptr, nullptr,
                   [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)kAtFork;
  struct Cached {
    std::uint64_t generation = 0;
    std::string prefix;
  };
  thread_local Cached cached;
  const std::uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (cached.generation != generation) {
    cached.prefix = SharedPrefix(generation);
    cached.generation = generation;
  }
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof(digits),
                                 counter.fetch_add(1, std::memory_order_relaxed) + 1)
                       .ptr;
  out->reserve(cached.prefix.size() + static_cast<std::size_t>(end - digits));
  out->assign(cached.prefix).append(digits, end);
}

}  // namespace internal

std::string DefaultOwner() {
  std::string out;
  internal::AssignDefaultOwner(&out);
  return out;
}

}  // namespace ordo
