// The `ordo` binary: parse the command line, run the subcommand, exit with its code.
#include <iostream>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "command_line.h"
#include "commands.h"

int main(int argc, char** argv) {
  // stdout belongs to the job (ordo run) or to the JSON (ordo lock): diagnostics go to stderr,
  // as plain lines. SPDLOG_LEVEL=debug shows more.
  auto logger = spdlog::stderr_logger_st("ordo");
  logger->set_pattern("%v");
  spdlog::set_default_logger(logger);
  spdlog::cfg::load_env_levels();

  using ordo::cli::Command;
  const Command command = ordo::cli::ParseCommandLine(argc, argv, std::cout, std::cerr);
  switch (command.kind) {
    case Command::Kind::kDone:
      return command.exit_code;
    case Command::Kind::kRun:
      return ordo::cli::RunCommand(command.run);
    case Command::Kind::kElect:
      return ordo::cli::RunCommand(command.elect);
    case Command::Kind::kLeader:
      return ordo::cli::LeaderCommand(command.leader);
    case Command::Kind::kLock:
      return ordo::cli::LockCommand(command.lock);
    case Command::Kind::kMigrate:
      return ordo::cli::MigrateCommand(command.migrate);
    case Command::Kind::kServe:
      return ordo::cli::ServeCommand(command.serve);
    case Command::Kind::kFence:
      return ordo::cli::FenceCommand(command.fence);
  }
  return ordo::cli::kExitOrdoError;
}
