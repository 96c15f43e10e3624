// What each subcommand does, given its parsed options. Each returns the process exit code
// (options.h) after printing what the user needs to see.
#ifndef ORDO_CLI_COMMANDS_H_
#define ORDO_CLI_COMMANDS_H_

#include "options.h"

namespace ordo::cli {

// `ordo run`. REQUIRES: called on the main thread before any other thread was started (it
// takes the forwarded signals out of normal delivery, and the job's parent-death signal is tied
// to the calling thread).
int RunCommand(const RunOptions& options);
int LockCommand(const LockOptions& options);
// `ordo leader`: the election's leader as JSON lines.
int LeaderCommand(const LeaderOptions& options);
int MigrateCommand(const MigrateOptions& options);
int ServeCommand(const ServeFlags& flags);
int FenceCommand(const FenceOptions& options);

}  // namespace ordo::cli

#endif  // ORDO_CLI_COMMANDS_H_
