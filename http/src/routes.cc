#include "routes.h"

#include <array>

namespace ordo::http {
namespace {

// One row per path shape. `pattern` segments are literals, or "{}" for the name.
struct RouteRow {
  RouteId id;
  std::vector<std::string_view> pattern;
  NameKind kind;
  std::vector<std::string_view> methods;
  std::vector<std::string_view> params;
  bool open;
  bool backend;
};

const std::vector<RouteRow>& Table() {
  static const std::vector<RouteRow> kRoutes = {
      {RouteId::kHealthz, {"healthz"}, NameKind::kNone, {"GET"}, {}, true, false},
      {RouteId::kReadyz, {"readyz"}, NameKind::kNone, {"GET"}, {}, false, true},
      {RouteId::kMetrics, {"metrics"}, NameKind::kNone, {"GET"}, {}, false, false},
      {RouteId::kInfo, {"v1", "info"}, NameKind::kNone, {"GET"}, {}, false, false},
      {RouteId::kList, {"v1", "locks"}, NameKind::kNone, {"GET"}, {"prefix", "limit"}, false,
       true},
      {RouteId::kDescribe, {"v1", "locks", "{}"}, NameKind::kLock, {"GET"}, {}, false, true},
      {RouteId::kAcquire, {"v1", "locks", "{}", "acquire"}, NameKind::kLock, {"POST"}, {}, false,
       true},
      {RouteId::kRenew, {"v1", "locks", "{}", "renew"}, NameKind::kLock, {"POST"}, {}, false,
       true},
      {RouteId::kRelease, {"v1", "locks", "{}", "release"}, NameKind::kLock, {"POST"}, {}, false,
       true},
      {RouteId::kFenced, {"v1", "fenced", "{}"}, NameKind::kKey, {"GET", "PUT"}, {}, false, true},
      {RouteId::kObject, {"v1", "objects", "{}"}, NameKind::kKey, {"GET", "PUT"}, {}, false,
       true},
      {RouteId::kEvents, {"v1", "events"}, NameKind::kNone, {"GET"}, {"after", "wait_ms", "prefix"},
       false, false},
      {RouteId::kRevoke, {"v1", "locks", "{}", "revoke"}, NameKind::kLock, {"POST"}, {}, false,
       true},
      {RouteId::kUi, {"ui"}, NameKind::kNone, {"GET"}, {}, true, false},
      {RouteId::kElections, {"v1", "elections"}, NameKind::kNone, {"GET"}, {"prefix"}, false,
       true},
      {RouteId::kElection, {"v1", "elections", "{}"}, NameKind::kElection, {"GET"},
       {"after_term", "wait_ms"}, false, true},
      {RouteId::kCampaign, {"v1", "elections", "{}", "campaign"}, NameKind::kElection, {"POST"},
       {}, false, true},
      {RouteId::kElectionRenew, {"v1", "elections", "{}", "renew"}, NameKind::kElection,
       {"POST"}, {}, false, true},
      {RouteId::kResign, {"v1", "elections", "{}", "resign"}, NameKind::kElection, {"POST"}, {},
       false, true},
  };
  return kRoutes;
}

// The segments of a path, on the stack: no route has more than kMaxSegments, so a longer
// path reports kMaxSegments + 1 (and matches nothing).
constexpr std::size_t kMaxSegments = 4;
struct Segments {
  std::array<std::string_view, kMaxSegments> part;
  std::size_t size = 0;
};

Segments SplitPath(std::string_view path) {
  Segments parts;
  if (path.empty() || path.front() != '/') return parts;
  path.remove_prefix(1);
  while (true) {
    if (parts.size == kMaxSegments) {
      ++parts.size;
      break;
    }
    const auto slash = path.find('/');
    parts.part[parts.size++] = path.substr(0, slash);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = HexDigit(in[i + 1]);
    const int lo = HexDigit(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

const char* NameKindLabel(NameKind kind) {
  switch (kind) {
    case NameKind::kKey: return "key";
    case NameKind::kElection: return "election name";
    default: return "lock name";
  }
}

std::optional<Route> MatchRoute(std::string_view target) {
  const auto parts = SplitPath(target.substr(0, target.find('?')));
  for (const RouteRow& row : Table()) {
    if (row.pattern.size() != parts.size) continue;
    std::string_view raw_name;
    bool match = true;
    for (std::size_t i = 0; i < parts.size && match; ++i) {
      if (row.pattern[i] == "{}") {
        raw_name = parts.part[i];
      } else {
        match = row.pattern[i] == parts.part[i];
      }
    }
    if (!match) continue;
    Route route{row.id, row.kind, "", "", row.methods, row.params, row.open, row.backend};
    if (row.kind != NameKind::kNone) {
      auto decoded = PercentDecode(raw_name);
      if (decoded) {
        route.name = std::move(*decoded);
      } else {
        // Decoding happens before ValidateName, so "%2F", "%2E%2E" and "%00" are judged as
        // the '/', ".." and NUL they stand for; an escape that is not one is named as such.
        route.name_error = std::string(NameKindLabel(row.kind)) + " '" +
                           std::string(raw_name.substr(0, 160)) +
                           "' has a '%' that is not followed by two hex digits";
      }
    }
    return route;
  }
  return std::nullopt;
}

bool MethodAllowed(const Route& route, std::string_view method) {
  for (auto m : route.methods) {
    if (m == method || (m == "GET" && method == "HEAD")) return true;
  }
  return false;
}

std::string AllowHeader(const Route& route) {
  std::string out;
  for (auto m : route.methods) {
    if (!out.empty()) out += ", ";
    out += m;
    if (m == "GET") out += ", HEAD";
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(
    std::string_view target, std::string* error) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view item = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    std::string key(item.substr(0, eq));
    std::string value(eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1));
    for (auto* s : {&key, &value}) {
      for (auto& c : *s) {
        if (c == '+') c = ' ';
      }
    }
    auto k = PercentDecode(key);
    auto v = PercentDecode(value);
    if (!k || !v) {
      *error = "query parameter '" + std::string(item.substr(0, 160)) +
               "' has a '%' that is not followed by two hex digits";
      return std::nullopt;
    }
    out.emplace_back(std::move(*k), std::move(*v));
  }
  return out;
}

}  // namespace ordo::http
