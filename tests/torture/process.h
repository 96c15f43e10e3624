// Process plumbing for ordo-torture: fork+exec, pidfds, and passing pidfds over a socket.
//
// The nemesis signals processes it did not start. A pid can be reused once its process is
// reaped, so it never gets bare pids: the orchestrator (the parent, which reaps) opens a pidfd
// for each child while the child cannot yet have been reaped, and passes it over a
// SOCK_SEQPACKET socket. pidfd_send_signal on a reaped process fails with ESRCH instead of
// hitting a stranger.
#ifndef ORDO_TESTS_TORTURE_PROCESS_H_
#define ORDO_TESTS_TORTURE_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace ordo::torture {

// fork+exec of argv. `keep_fd`, if >= 0, is handed to the child as fd 3; everything else the
// parent opened is close-on-exec. The child's signal mask is cleared. Returns the pid, or -1.
// `stdout_path`, if not empty, receives the child's stdout and stderr.
pid_t Spawn(const std::vector<std::string>& argv, int keep_fd = -1,
            const std::string& stdout_path = "");

// Runs argv to completion; returns its exit status (-1 if it could not run or was signalled).
int RunCommand(const std::vector<std::string>& argv, const std::string& output_path = "");

// A pidfd for `pid` (a child of ours, not yet reaped), or -1.
int OpenPidfd(pid_t pid);
// pidfd_send_signal; false when the process is gone.
bool SignalPidfd(int pidfd, int sig);

// Sends `text` with `fd_to_pass` attached. false on error (the peer is gone).
bool SendWithFd(int socket, const std::string& text, int fd_to_pass);
// Receives one message; the passed fd (or -1) goes to *fd. nullopt on EOF or error.
std::optional<std::string> ReceiveWithFd(int socket, int* fd);

}  // namespace ordo::torture

#endif  // ORDO_TESTS_TORTURE_PROCESS_H_
