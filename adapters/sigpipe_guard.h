// SigpipeGuard — shared by the adapters that talk to servers over HTTP (http://, etcd://).
//
// Writing to a connection the peer reset raises SIGPIPE, which would kill the user's program.
// The guard blocks SIGPIPE on the calling thread for its lifetime and swallows any that became
// pending meanwhile (unless one was already pending before: that one is not ours). Use one per
// request, on the stack. Not copyable; each object belongs to one thread.
#ifndef ORDO_ADAPTERS_SIGPIPE_GUARD_H_
#define ORDO_ADAPTERS_SIGPIPE_GUARD_H_

#include <pthread.h>
#include <signal.h>

#include <ctime>

namespace ordo::adapters {

class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

}  // namespace ordo::adapters

#endif  // ORDO_ADAPTERS_SIGPIPE_GUARD_H_
