// libordo-fence.so: `ordo fence install|sql` (fence_install.h), loaded by the binary only for
// that subcommand (see backend_loader.h), so that `ordo run` does not link libpq and SQLite.
#include <cstdio>

#include <spdlog/spdlog.h>

#include "fence_install.h"
#include "options.h"

extern "C" __attribute__((visibility("default"))) int ordo_cli_fence(
    const ordo::cli::FenceOptions* options) {
  using namespace ordo::cli;
  const FenceOptions& o = *options;
  const FenceTarget target{.database = o.database, .table = o.table, .column = o.column,
                           .schema = o.schema};
  const char* verb = o.action == FenceAction::kInstall ? "install" : "sql";
  auto out = o.action == FenceAction::kInstall ? InstallFence(target) : RenderFenceSql(target);
  if (!out.ok()) {
    spdlog::error("ordo fence {}: {}", verb, out.status().ToString());
    return kExitOrdoError;
  }
  if (o.action == FenceAction::kInstall) {
    std::printf("ordo fence install: %s\n", out->c_str());
  } else {
    std::fputs(out->c_str(), stdout);
  }
  return std::fflush(stdout) == 0 ? kExitOk : kExitOrdoError;
}
