// Processes ordo-bench starts: servers on loopback (stopped at the end, also on error or
// Ctrl-C) and short-lived commands it times.
#ifndef ORDO_BENCH_PROCS_H_
#define ORDO_BENCH_PROCS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "subprocess.h"

namespace ordo::bench {

// From the harness (tools/harness/subprocess.h).
using testing::ConnectLoopback;
using testing::WaitForPort;

// The absolute path of a program found on PATH (or in /usr/sbin, /usr/lib/postgresql/*/bin),
// or "" when it is not installed.
std::string FindProgram(const std::string& name);

// A server process: started with argv (argv[0] absolute), stdout to a pipe nobody reads (so
// give it a log file), killed and reaped by the destructor. Its pid is also known to the
// SIGINT/SIGTERM handler installed by InstallCleanupHandlers(), which kills it before exiting.
class Server {
 public:
  explicit Server(const std::vector<std::string>& argv);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  pid_t pid() const;
  // Sends SIGTERM and waits for the exit (the destructor then has nothing to do).
  void Stop();

 private:
  std::unique_ptr<testing::Child> child_;
  bool stopped_ = false;
};

// Kills every live Server (and registered pid) on SIGINT/SIGTERM, then exits 130/143.
void InstallCleanupHandlers();
void RegisterPid(pid_t pid);
void UnregisterPid(pid_t pid);

// Runs argv (argv[0] absolute) to completion with stdin/stdout/stderr on /dev/null; returns the
// exit status (-1 when it could not be started or was killed) and the wall time in
// microseconds.
int RunCommand(const std::vector<std::string>& argv, double* wall_us,
               const std::vector<std::string>& extra_env = {});

// VmHWM (peak resident set) of a process, in KiB; -1 when unreadable.
long PeakRssKiB(pid_t pid);

}  // namespace ordo::bench

#endif  // ORDO_BENCH_PROCS_H_
