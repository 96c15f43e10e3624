// `ordo leader NAME [--watch]`: who leads an election, as JSON lines (the HTTP API's fields).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "backend_loader.h"
#include "commands.h"
#include "defaults.h"
#include "json_output.h"
#include "ordo/election.h"
#include "ordo/names.h"

namespace ordo::cli {
namespace {

// {"name","leader":{"candidate","term","expires_at"}|null,"last_term"}
std::string ElectionJson(const ElectionState& state) {
  nlohmann::json out = {{"name", state.name}, {"leader", nullptr}, {"last_term", state.last_term}};
  if (state.leader) {
    out["leader"] = {{"candidate", state.leader->candidate},
                     {"term", state.leader->term},
                     {"expires_at", Rfc3339Millis(state.leader->expires_at)}};
  }
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void PrintLine(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);  // --watch: each change reaches a pipe at once
}

int Fail(const Status& s) {
  PrintLine(ErrorJson(s));
  spdlog::error("ordo leader: {}", s.ToString());
  return kExitOrdoError;
}

}  // namespace

int LeaderCommand(const LeaderOptions& o) {
  if (Status valid = ValidateName(o.name, "election name"); !valid.ok()) return Fail(valid);
  std::string url = o.backend;
  if (url.empty()) {
    auto fallback = DefaultRunBackend();
    if (!fallback.ok()) return Fail(fallback.status());
    url = *fallback;
  }
  auto opened = OpenBackend(url);
  if (!opened.ok()) return Fail(opened.status());
  Election election(**opened, o.name);
  // Observe(0, 0) is Leader() with a never-held election reported as nobody leading.
  auto state = election.Observe(0, std::chrono::milliseconds(0));
  if (!state.ok()) return Fail(state.status());
  PrintLine(ElectionJson(*state));
  while (o.watch) {
    auto next = election.Observe(state->term(), kMaxWait);
    if (!next.ok()) return Fail(next.status());
    if (next->term() != state->term()) PrintLine(ElectionJson(*next));
    state = std::move(next);
  }
  return kExitOk;
}

}  // namespace ordo::cli
