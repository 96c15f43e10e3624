#include "connection_threads.h"

#include <pthread.h>

#include <spdlog/spdlog.h>

namespace ordo::http {

void ConnectionThreads::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  tasks_.push_back(std::move(fn));
  if (idle_ > tasks_.size() - 1) {
    work_.notify_one();
    return;
  }
  if (threads_ >= max_threads_) return;  // at the cap: the task waits for a thread to free up
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackBytes);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  ++threads_;
  if (pthread_create(&thread, &attr, &ThreadMain, this) != 0) {
    --threads_;
    // Out of threads: the task stays queued for a running thread; with none, run it here so
    // that the connection is answered (and closed) rather than leaked.
    if (threads_ == 0) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      spdlog::warn("ordo serve: cannot start a connection thread; serving on the accept thread");
      task();
    }
  }
  pthread_attr_destroy(&attr);
}

void* ConnectionThreads::ThreadMain(void* self) {
  static_cast<ConnectionThreads*>(self)->Work();
  return nullptr;
}

void ConnectionThreads::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    if (shutdown_) break;
    ++idle_;
    const bool woke = work_.wait_for(lock, kIdleExit,
                                     [this] { return !tasks_.empty() || shutdown_; });
    --idle_;
    if (!woke) break;  // idle for kIdleExit: give the thread back
  }
  --threads_;
  // Notified under the lock: once it is released this thread touches nothing of *this, so
  // shutdown() may return and the queue be destroyed.
  exited_.notify_all();
}

void ConnectionThreads::shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  shutdown_ = true;
  work_.notify_all();
  exited_.wait(lock, [this] { return threads_ == 0; });
}

std::size_t ConnectionThreads::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_;
}

}  // namespace ordo::http
