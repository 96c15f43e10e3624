// The `ordo` command line (CLI11): subcommands, flags, help texts with examples. Parsing only:
// the result says what to do; main.cc dispatches to the *_command.cc files.
#ifndef ORDO_CLI_COMMAND_LINE_H_
#define ORDO_CLI_COMMAND_LINE_H_

#include <ostream>

#include "options.h"

namespace ordo::cli {

struct Command {
  enum class Kind {
    kDone,  // nothing to run: help or version was printed, or the command line was wrong
    kRun,
    kLock,
    kMigrate,
    kServe,
    kFence,
    kElect,   // RunCommand(elect)
    kLeader,
  };
  Kind kind = Kind::kDone;
  int exit_code = kExitOk;  // for kDone: 0 after help/version, 125 after an error
  RunOptions run;
  RunOptions elect;  // `ordo elect` (election set): its own storage, so run's flags are untouched
  LockOptions lock;
  MigrateOptions migrate;
  ServeFlags serve;
  FenceOptions fence;
  LeaderOptions leader;
};

// Parses argv. Help, version and errors are printed to `out`/`err`. Not thread-safe.
Command ParseCommandLine(int argc, const char* const* argv, std::ostream& out,
                         std::ostream& err);

}  // namespace ordo::cli

#endif  // ORDO_CLI_COMMAND_LINE_H_
