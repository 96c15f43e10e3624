// `ordo migrate` and `ordo serve`.
#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

#include "backend_loader.h"
#include "commands.h"
#include "defaults.h"
#include "ordo/registry.h"
#include "ordo_http/server.h"

namespace ordo::cli {
namespace {

// The URL as it may be shown: the password masked.
std::string Shown(const std::string& url) {
  auto parsed = ParseBackendUrl(url);
  return parsed.ok() ? parsed->Masked() : url;
}

Result<std::string> BackendOrServeDefault(const std::string& url) {
  if (!url.empty()) return url;
  return DefaultServeBackend();
}

}  // namespace

int MigrateCommand(const MigrateOptions& o) {
  auto url = BackendOrServeDefault(o.backend);
  if (!url.ok()) {
    spdlog::error("ordo migrate: {}", url.status().message());
    return kExitOrdoError;
  }
  // Open applies every migration not yet applied, in order, or fails without a half-done one.
  auto opened = OpenBackend(*url);
  if (!opened.ok()) {
    spdlog::error("ordo migrate: {}: {}", Shown(*url), opened.status().ToString());
    return kExitOrdoError;
  }
  if (Status ping = (*opened)->Ping(); !ping.ok()) {
    spdlog::error("ordo migrate: {}: {}", Shown(*url), ping.ToString());
    return kExitOrdoError;
  }
  std::printf("ordo migrate: %s: schema up to date\n", Shown(*url).c_str());
  return kExitOk;
}

int ServeCommand(const ServeFlags& flags) {
  auto url = BackendOrServeDefault(flags.backend);
  if (!url.ok()) {
    spdlog::error("ordo serve: {}", url.status().message());
    return kExitOrdoError;
  }
  http::ServeOptions options = flags.serve;
  options.backend_url = *url;
  return RunServerModule(options);
}

}  // namespace ordo::cli
