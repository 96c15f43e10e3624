// `ordo fence install|sql`: fencing inside the user's own database (fence_install.h).
#include <cstdio>

#include <spdlog/spdlog.h>

#include "commands.h"
#include "fence_install.h"

namespace ordo::cli {

int FenceCommand(const FenceOptions& o) {
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

}  // namespace ordo::cli
