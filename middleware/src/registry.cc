#include "ordo/registry.h"

#include <algorithm>
#include <cctype>
#include <mutex>

namespace ordo {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, BackendFactory, std::less<>> factories;  // guarded by mu
};

Registry& GetRegistry() {
  static Registry* r = new Registry;  // never destroyed: usable during static destruction
  return *r;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in`; fails on a truncated escape or an escaped NUL.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

std::string MaskedText(std::string_view url) {
  // Mask "user:password@" inside the authority without relying on a successful parse.
  std::string s(url);
  const auto scheme_end = s.find("://");
  if (scheme_end == std::string::npos) return s;
  const auto auth_begin = scheme_end + 3;
  auto auth_end = s.find_first_of("/?#", auth_begin);
  if (auth_end == std::string::npos) auth_end = s.size();
  const auto at = s.rfind('@', auth_end);
  if (at == std::string::npos || at < auth_begin) return s;
  const auto colon = s.find(':', auth_begin);
  if (colon == std::string::npos || colon > at) return s;
  return s.substr(0, colon + 1) + "****" + s.substr(at);
}

}  // namespace

std::string BackendUrl::Masked() const { return MaskedText(original); }

Status BackendUrl::CheckQuery(const std::vector<std::string_view>& known) const {
  for (const auto& [key, value] : query) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (auto k : known) {
      if (!list.empty()) list += ", ";
      list += k;
    }
    return InvalidArgumentError("unknown query parameter '" + key + "' in " + Masked() +
                                (list.empty() ? "; this backend takes none"
                                              : "; known parameters: " + list));
  }
  return OkStatus();
}

std::string BackendUrl::QueryOr(std::string_view key, std::string_view fallback) const {
  auto it = query.find(std::string(key));
  return it == query.end() ? std::string(fallback) : it->second;
}

Result<BackendUrl> ParseBackendUrl(std::string_view text) {
  BackendUrl url;
  url.original = std::string(text);
  const std::string masked = MaskedText(text);
  if (text.empty()) return InvalidArgumentError("backend URL is empty");
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u == 0x7f) {
      return InvalidArgumentError("backend URL '" + masked +
                                  "' contains a space or a control character");
    }
  }
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError("backend URL '" + masked +
                                "' has no scheme; expected e.g. sqlite:///var/lib/ordo/ordo.db");
  }
  for (std::size_t i = 0; i < colon; ++i) {
    const char c = text[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.')) {
      return InvalidArgumentError("backend URL '" + masked + "' has a malformed scheme");
    }
    url.scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  std::string_view rest = text.substr(colon + 1);
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) {
    return InvalidArgumentError("backend URL '" + masked + "' has a fragment ('#')");
  }
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (rest.substr(0, 2) == "//") {
    url.has_authority = true;
    rest.remove_prefix(2);
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      std::string_view userinfo = authority.substr(0, at);
      authority = authority.substr(at + 1);
      std::string_view pw;
      bool has_pw = false;
      if (const auto c = userinfo.find(':'); c != std::string_view::npos) {
        pw = userinfo.substr(c + 1);
        userinfo = userinfo.substr(0, c);
        has_pw = true;
      }
      if (!PercentDecode(userinfo, &url.user) || (has_pw && !PercentDecode(pw, &url.password))) {
        return InvalidArgumentError("backend URL '" + masked + "' has a malformed user name");
      }
    }
    if (!authority.empty() && authority.front() == '[') {
      const auto close = authority.find(']');
      if (close == std::string_view::npos) {
        return InvalidArgumentError("backend URL '" + masked + "' has an unclosed '[' in host");
      }
      url.host = std::string(authority.substr(1, close - 1));
      authority = authority.substr(close + 1);
      if (!authority.empty() && authority.front() != ':') {
        return InvalidArgumentError("backend URL '" + masked + "' has junk after the host");
      }
      if (!authority.empty()) url.port = std::string(authority.substr(1));
    } else if (const auto c = authority.rfind(':'); c != std::string_view::npos) {
      url.host = std::string(authority.substr(0, c));
      url.port = std::string(authority.substr(c + 1));
    } else {
      url.host = std::string(authority);
    }
    if (!url.port.empty()) {
      const bool digits = std::all_of(url.port.begin(), url.port.end(),
                                      [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || url.port.size() > 5 || std::stoul(url.port) == 0 ||
          std::stoul(url.port) > 65535) {
        return InvalidArgumentError("backend URL '" + masked + "' has a bad port '" + url.port +
                                    "'; expected 1-65535");
      }
    }
  }
  if (!PercentDecode(rest, &url.path)) {
    return InvalidArgumentError("backend URL '" + masked + "' has a malformed path");
  }
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    std::string key;
    std::string value;
    if (!PercentDecode(pair.substr(0, eq), &key) ||
        (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), &value)) ||
        key.empty()) {
      return InvalidArgumentError("backend URL '" + masked + "' has a malformed query");
    }
    if (url.query.count(key) != 0) {
      return InvalidArgumentError("backend URL '" + masked + "' repeats query parameter '" +
                                  key + "'");
    }
    url.query.emplace(std::move(key), std::move(value));
  }
  return url;
}

bool RegisterBackend(std::string_view scheme, BackendFactory factory) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.factories[std::string(scheme)] = factory;
  return true;
}

std::vector<std::string> RegisteredSchemes() {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (const auto& [scheme, factory] : r.factories) out.push_back(scheme);
  return out;
}

Result<std::unique_ptr<Locker>> Open(std::string_view url_text) {
  auto url = ParseBackendUrl(url_text);
  if (!url.ok()) return url.status();
  BackendFactory factory = nullptr;
  {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.factories.find(url->scheme);
    if (it != r.factories.end()) factory = it->second;
  }
  if (factory == nullptr) {
    std::string known;
    for (const auto& s : RegisteredSchemes()) known += (known.empty() ? "" : ", ") + s + ":";
    return InvalidArgumentError("unknown backend scheme '" + url->scheme + ":' in '" +
                                url->Masked() + "'; known: " + known);
  }
  return factory(*url);
}

}  // namespace ordo

// ordo::Open under a C name, for a program that loads libordo.so with dlopen(3) (the `ordo`
// binary, cli/src/backend_loader.h): a C name does not change with the C++ signature's
// mangling. The result is written to *out, which must be constructed.
extern "C" __attribute__((visibility("default"))) void ordo_open_backend(
    const char* url, std::size_t size, ordo::Result<std::unique_ptr<ordo::Locker>>* out) {
  *out = ordo::Open(std::string_view(url, size));
}
