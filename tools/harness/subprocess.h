// Process plumbing for ordo's tests, ordo-bench and ordo-torture: the one fork+exec of the
// three (Spawn), a child with piped stdio (Child), pidfds, passing descriptors over a socket,
// and loopback ports.
//
// Spawn is the only place these programs fork to exec. Everything between fork and exec is
// async-signal-safe (the callers have threads): argv and the environment are built before the
// fork, and the child only dup2s, changes ids and directory, and execs.
//
// The nemesis of ordo-torture signals processes it did not start. A pid can be reused once its
// process is reaped, so it never gets bare pids: the parent (which reaps) opens a pidfd for each
// child while the child cannot yet have been reaped, and passes it over a SOCK_SEQPACKET socket.
// pidfd_send_signal on a reaped process fails with ESRCH instead of hitting a stranger.
//
// Thread safety: the free functions may be called from any thread. A Child and a Watchdog are
// each used by one thread at a time.
#ifndef ORDO_TOOLS_HARNESS_SUBPROCESS_H_
#define ORDO_TOOLS_HARNESS_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace ordo::testing {

struct SpawnOptions {
  // Descriptors the child gets as stdin, stdout and stderr; -1 keeps the parent's.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Handed to the child as fd 3 (everything else the parent opened is close-on-exec).
  int keep_fd = -1;
  // "NAME=value" entries added to (or overriding, being later) the parent's environment.
  std::vector<std::string> extra_env;
  // The child's working directory; empty: the parent's.
  std::string directory;
  // setsid(): Ctrl-C or a kill of the caller's process group does not reach the child.
  bool new_session = false;
  // setpgid(0, 0): signals to the caller's process group do not reach the child.
  bool new_process_group = false;
  // PR_SET_PDEATHSIG: the child gets SIGKILL when the thread that spawned it dies.
  bool kill_with_parent = false;
  // When set (>= 0), the child drops its supplementary groups and runs as uid/gid.
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

// fork+exec of argv (argv[0] a path). The child's signal mask is cleared. Returns the pid, or
// -1 when fork failed. A child that cannot exec exits 127 (126 when its setup failed).
pid_t Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

// The common case: `keep_fd` as fd 3, stdout and stderr appended to `log_path` (if not empty).
pid_t SpawnLogged(const std::vector<std::string>& argv, int keep_fd = -1,
                  const std::string& log_path = "");

// Waits for `pid` (retrying on EINTR); returns the raw wait status, or -1.
int WaitForExit(pid_t pid);
// The exit code of a raw wait status: the code, or 128+N for death by signal N (-1 otherwise).
int ExitCode(int wait_status);

// Runs argv to completion, stdout and stderr appended to `log_path` (or inherited when empty);
// returns its exit code (-1 if it could not run or was signalled).
int RunCommand(const std::vector<std::string>& argv, const std::string& log_path = "");

// A pidfd for `pid` (a child of ours, not yet reaped), or -1.
int OpenPidfd(pid_t pid);
// pidfd_send_signal; false when the process is gone.
bool SignalPidfd(int pidfd, int sig);

// Sends `text` with `fd_to_pass` attached (-1: none). false on error (the peer is gone).
bool SendWithFd(int socket, const std::string& text, int fd_to_pass);
// Receives one message; the passed fd (or -1) goes to *fd. nullopt on EOF or error.
std::optional<std::string> ReceiveWithFd(int socket, int* fd);

// A child process started with Spawn, its stdout readable line by line and its stdin
// writable. The destructor kills (SIGKILL) and reaps it if it still runs; with
// `kill_with_parent` it also gets SIGKILL when the thread that started it dies (a test that
// crashes or times out leaves no server behind).
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv, bool kill_with_parent = false);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Reads one line from the child's stdout (without '\n'); empty on EOF or timeout.
  std::string ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // True once ReadLine met the end of the child's stdout.
  bool eof() const { return eof_; }
  void WriteLine(const std::string& line);
  void CloseStdin();
  void Kill(int sig);
  // Waits for exit; returns the raw wait status.
  int Wait();

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int in_fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
  bool reaped_ = false;
};

// Cleanup that happens even when this process dies without running destructors (a crash,
// SIGKILL, a test timeout): a shell in a session of its own (setsid, so that a Ctrl-C or a kill
// of the test's process group does not reach it) reads a pipe whose write end only this
// process holds (close-on-exec), and runs `script` at EOF — when Finish() closes the pipe, or
// when the kernel does because this process died. The throwaway clusters own one each, to stop
// their servers and remove their directories.
//
// A forked child that never calls exec inherits the pipe but is not the owner: its Finish()
// and destructor leave the watchdog alone (the parent's EOF then waits for the child's exit too).
class Watchdog {
 public:
  Watchdog() = default;
  // Finish().
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts the shell that will run `script` (/bin/sh -c). Throws std::runtime_error when it
  // cannot; at most once.
  void Start(const std::string& script);
  // Closes the pipe and waits until the script has run. Does nothing when not started, when
  // already finished, or in a process other than the one that started it.
  void Finish();
  bool started() const { return fd_ >= 0; }

 private:
  pid_t owner_pid_ = 0;
  pid_t pid_ = -1;
  int fd_ = -1;
};

// A TCP port on 127.0.0.1 that was free a moment ago. Throws std::runtime_error when none is.
int FreeLoopbackPort();
// A TCP connection to 127.0.0.1:port (close-on-exec); -1 on failure, with errno set.
int ConnectLoopback(int port);
// Waits (bounded polls) until 127.0.0.1:port accepts a connection. False on timeout.
bool WaitForPort(int port, std::chrono::milliseconds timeout);

}  // namespace ordo::testing

#endif  // ORDO_TOOLS_HARNESS_SUBPROCESS_H_
