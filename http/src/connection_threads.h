// ConnectionThreads: the httplib::TaskQueue of the REST server — one thread per open connection.
//
// cpp-httplib runs a connection (all its keep-alive requests) as one task, so a fixed pool of N
// threads serves at most N connections and queues the rest behind them: with N waiting acquires
// a health check would not be answered. Here a task gets an idle thread or a new one, up to
// `max_threads` (the connection cap; beyond it connections wait for a free thread, in order).
// Threads are cheap by construction: a 1 MiB stack reserve of which only touched pages are
// resident, and an idle thread exits after kIdleExit. What waiting costs is bounded elsewhere
// (WaitLines caps the waiters below the connection cap and keeps them out of the backend).
//
// Thread-safe. shutdown() blocks until every running task has returned.
#ifndef ORDO_HTTP_SRC_CONNECTION_THREADS_H_
#define ORDO_HTTP_SRC_CONNECTION_THREADS_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

#include <httplib.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ORDO_HTTP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ORDO_HTTP_SANITIZED 1
#endif
#endif

namespace ordo::http {

class ConnectionThreads final : public httplib::TaskQueue {
 public:
#if defined(ORDO_HTTP_SANITIZED)
  static constexpr std::size_t kStackBytes = 4 << 20;  // sanitizers make frames much larger
#else
  static constexpr std::size_t kStackBytes = 1 << 20;
#endif
  static constexpr std::chrono::seconds kIdleExit{10};

  explicit ConnectionThreads(std::size_t max_threads) : max_threads_(max_threads) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  // Threads alive now (busy or idle).
  std::size_t threads() const;

 private:
  static void* ThreadMain(void* self);
  void Work();

  const std::size_t max_threads_;
  mutable std::mutex mu_;
  std::condition_variable work_;   // a task was queued, or shutdown
  std::condition_variable exited_;  // a thread left Work()
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  std::size_t threads_ = 0;                  // guarded by mu_
  std::size_t idle_ = 0;                     // guarded by mu_
  bool shutdown_ = false;                    // guarded by mu_
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_CONNECTION_THREADS_H_
