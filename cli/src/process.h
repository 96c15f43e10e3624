// Process control for `ordo run`: signal intake, spawning the job in its own process group,
// forwarding signals to it, reaping it, and killing it with escalation.
//
// Kept apart from locking and flag parsing so that it can be tested on its own with real
// processes (tests/cli/process_test.cc).
//
// What is guaranteed about the job's processes:
//   - The job's direct child runs in a new process group (pgid = its pid); forwarded signals
//     and kills go to the whole group, so pipelines and subshells that stay in it get them too.
//   - If ordo dies for any reason, SIGKILL included, the direct child gets SIGKILL from the
//     kernel (PR_SET_PDEATHSIG, with the getppid() race check), and a sentinel process that
//     ordo forks sees its pipe close and SIGKILLs the whole group. Processes that left the
//     group (setsid, setpgid: daemons) are not tracked.
//   - On a normal exit (the direct child exited) ordo disarms the sentinel: processes the job
//     left running in the background are not killed, as with flock(1).
//
// Not thread-safe: one thread (the main thread, see Job::Start) drives all of it.
#ifndef ORDO_CLI_PROCESS_H_
#define ORDO_CLI_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ordo/status.h"

namespace ordo::cli {

// The signals ordo forwards to the job's process group.
inline constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};

// Takes the forwarded signals and SIGCHLD out of normal delivery (blocks them) and hands them
// out through a signalfd, so that a poll loop sees them with no handler races.
// Create it before any thread starts: threads inherit the mask, and a thread without it would
// take a SIGTERM with the default action (death without forwarding).
class SignalWatch {
 public:
  // kInternal if the signalfd cannot be created.
  static Result<std::unique_ptr<SignalWatch>> Create();
  ~SignalWatch();  // restores the original mask
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  int fd() const { return fd_; }
  // The mask ordo started with: what the job gets.
  const sigset_t& original_mask() const { return original_; }
  // The next pending signal, or 0 when none is pending. Never blocks.
  int Take();

 private:
  SignalWatch() = default;
  int fd_ = -1;
  sigset_t original_{};
};

struct JobSpec {
  std::vector<std::string> argv;  // argv[0] is searched in PATH as execvp does
  std::vector<std::string> env;   // the job's whole environment, "NAME=value"
  sigset_t mask{};                // the job's signal mask (SignalWatch::original_mask)
  // Make the job's group the terminal's foreground group when ordo's is (interactive use:
  // the job may read the terminal, and ^C reaches it directly).
  bool take_terminal = true;
  // How ordo's messages about the job begin ("ordo run", "ordo elect").
  std::string command = "ordo";
};

class Job {
 public:
  // Forks and execs the job. REQUIRES: called from the main thread, which must live until the
  // job has exited (PR_SET_PDEATHSIG fires when the *thread* that forked exits).
  // Errors: kNotFound — the command does not exist (exit 127); kInvalidArgument — it exists but
  // cannot be executed (permission, format: exit 126); kInternal — fork or pipe failed (125).
  // Exec failures are reported by the child over a close-on-exec pipe, so they are told apart
  // from a job that runs and exits 126 or 127 itself.
  static Result<std::unique_ptr<Job>> Start(const JobSpec& spec);
  // Reaps what is left: kills nothing unless the job still runs (then SIGKILL, as for a
  // crash), gives the terminal back.
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `sig` to the job's whole process group. Harmless once the group is empty.
  void Signal(int sig);
  // Reaps the direct child if it has exited; never blocks. True once reaped.
  bool TryReap();
  bool reaped() const { return reaped_; }
  // The raw wait status. REQUIRES: reaped().
  int wait_status() const { return wait_status_; }

 private:
  Job() = default;
  // `close_in_sentinel`: a descriptor of ordo's the sentinel must not keep open.
  void StartSentinel(int close_in_sentinel);
  void DisarmSentinel();
  void RestoreTerminal();

  pid_t pid_ = -1;
  bool reaped_ = false;
  int wait_status_ = 0;
  pid_t sentinel_pid_ = -1;
  int sentinel_fd_ = -1;  // write end of the sentinel's pipe
  bool took_terminal_ = false;
  std::string command_;  // JobSpec::command
};

struct SuperviseOptions {
  // Readable once the lease is lost (-1: never).
  int lost_fd = -1;
  // After SIGTERM on a loss, how long before SIGKILL.
  std::chrono::milliseconds kill_grace{10'000};
  // The moment by which the job must be dead after a loss (the lease's self-fencing deadline);
  // it shortens kill_grace while still ahead. Empty: no such bound.
  std::function<std::chrono::steady_clock::time_point()> kill_by;
  // How messages begin ("ordo run", "ordo elect") and what a loss lost, for the log.
  std::string command = "ordo";
  std::string lost_what = "the lease";
};

struct JobOutcome {
  int wait_status = 0;
  bool lost = false;     // the lease was lost while the job ran
  int forwarded = 0;     // the last signal forwarded to the job, 0 if none
};

// Runs the event loop until the job's direct child has exited: forwards the signals ordo
// receives to the group; on loss, SIGTERM, then SIGKILL after the grace period (and SIGKILL to
// whatever is left of the group once the direct child is gone).
JobOutcome Supervise(Job& job, SignalWatch& signals, const SuperviseOptions& options);

// The shell convention: the exit code, or 128+N for death by signal N.
int ExitCodeOf(int wait_status);

}  // namespace ordo::cli

#endif  // ORDO_CLI_PROCESS_H_
