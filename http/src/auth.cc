#include "auth.h"

#include <fstream>
#include <sstream>

namespace ordo::http {
namespace {

// Compares in time that depends only on the lengths, never on where the bytes differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const std::size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<Authenticator> Authenticator::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return InvalidArgumentError("cannot read auth file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

Result<Authenticator> Authenticator::Parse(std::string_view text, const std::string& origin) {
  Authenticator auth;
  int line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = origin + ":" + std::to_string(line_no) + ": ";
    const auto space = line.find_first_of(" \t");
    if (space == std::string_view::npos) {
      return InvalidArgumentError(where + "expected 'TOKEN PREFIX[,PREFIX...]'");
    }
    Entry entry;
    entry.token = std::string(line.substr(0, space));
    std::string_view prefixes = Trim(line.substr(space));
    if (entry.token.size() < 16) {
      return InvalidArgumentError(where + "token is shorter than 16 characters");
    }
    for (unsigned char c : entry.token) {
      if (c < 0x21 || c > 0x7e) return InvalidArgumentError(where + "token has a non-printable byte");
    }
    entry.line = line_no;
    if (const auto gap = prefixes.find_first_of(" \t"); gap != std::string_view::npos) {
      const std::string_view scope = Trim(prefixes.substr(gap));
      if (scope != "admin") {
        return InvalidArgumentError(where + "after the prefixes only the scope 'admin' may "
                                    "follow, not '" + std::string(scope.substr(0, 40)) + "'");
      }
      entry.admin = true;
      prefixes = prefixes.substr(0, gap);
    }
    if (prefixes.find_first_of(" \t") != std::string_view::npos) {
      return InvalidArgumentError(where + "prefixes are separated by ',' without spaces");
    }
    while (!prefixes.empty()) {
      const auto comma = prefixes.find(',');
      std::string_view p = prefixes.substr(0, comma);
      prefixes = comma == std::string_view::npos ? std::string_view() : prefixes.substr(comma + 1);
      if (p.empty()) return InvalidArgumentError(where + "empty prefix");
      entry.prefixes.push_back(p == "*" ? std::string() : std::string(p));
    }
    if (entry.prefixes.empty()) return InvalidArgumentError(where + "no prefix; use '*' for all");
    for (const auto& e : auth.entries_) {
      if (e.token == entry.token) return InvalidArgumentError(where + "token listed twice");
    }
    auth.entries_.push_back(std::move(entry));
  }
  if (auth.entries_.empty()) {
    return InvalidArgumentError("auth file '" + origin + "' lists no token");
  }
  return auth;
}

int Authenticator::Find(std::string_view authorization) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size() ||
      authorization.substr(0, kScheme.size()) != kScheme) {
    return -1;
  }
  const std::string_view given = Trim(authorization.substr(kScheme.size()));
  int found = -1;
  // Every entry is compared, match or not.
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (ConstantTimeEquals(given, entries_[i].token)) found = static_cast<int>(i);
  }
  return found;
}

bool Authenticator::Allows(int index, std::string_view name) const {
  if (index < 0 || static_cast<std::size_t>(index) >= entries_.size()) return false;
  for (const auto& p : entries_[static_cast<std::size_t>(index)].prefixes) {
    if (name.substr(0, p.size()) == p) return true;
  }
  return false;
}

bool Authenticator::IsAdmin(int index) const {
  return index >= 0 && static_cast<std::size_t>(index) < entries_.size() &&
         entries_[static_cast<std::size_t>(index)].admin;
}

std::string Authenticator::Describe(int index) const {
  if (index < 0 || static_cast<std::size_t>(index) >= entries_.size()) return "no token";
  return "line " + std::to_string(entries_[static_cast<std::size_t>(index)].line);
}

}  // namespace ordo::http
