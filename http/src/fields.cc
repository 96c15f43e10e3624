#include "fields.h"

#include <charconv>
#include <set>

#include "ordo_wire/wire.h"

namespace ordo::http {

using json = nlohmann::json;

Result<std::uint64_t> ParseTokenText(std::string_view text, std::string_view what) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  std::uint64_t value = 0;
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (!digits || ec != std::errc() || end != text.data() + text.size()) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text.substr(0, 40)) +
                                "' is not a positive integer");
  }
  if (text.size() > 1 && text.front() == '0') {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text.substr(0, 40)) +
                                "' has a leading zero");
  }
  if (value == 0) return InvalidArgumentError(std::string(what) + " 0 is never issued");
  if (value >= wire::kMaxJsonToken) {
    return InvalidArgumentError(std::string(what) + " " + std::string(text) +
                                " is not below 2^53");
  }
  return value;
}

namespace {

// Parses `text` as JSON, failing on an object that repeats a key. nlohmann's parser callback
// sees every key before the object is built (where the last duplicate would silently win).
Result<json> ParseStrict(const std::string& text, std::string_view what) {
  std::vector<std::set<std::string>> open;  // the keys seen so far in each open object
  std::string duplicate;
  auto check = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && !open.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default: break;
    }
    return true;
  };
  json parsed = json::parse(text, check, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidArgumentError(std::string(what) + " is not valid JSON");
  if (!duplicate.empty()) {
    return InvalidArgumentError(std::string(what) + " has the key '" + duplicate.substr(0, 80) +
                                "' twice");
  }
  return parsed;
}

}  // namespace

Result<json> ParseBodyObject(const std::string& body) {
  if (body.empty()) return json::object();
  auto parsed = ParseStrict(body, "the body");
  if (!parsed.ok()) return parsed.status();
  if (!parsed->is_object()) return InvalidArgumentError("the body must be a JSON object");
  return parsed;
}

Status CheckJsonDocument(const std::string& text, std::string_view what) {
  auto parsed = ParseStrict(text, what);
  return parsed.ok() ? OkStatus() : parsed.status();
}

Status CheckFields(const json& body, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : body.items()) {
    bool ok = false;
    for (auto k : known) ok = ok || k == key;
    if (!ok) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return InvalidArgumentError("unknown field '" + key + "'; known fields: " + list);
    }
  }
  return OkStatus();
}

Result<std::uint64_t> UintField(const json& body, const char* key, std::uint64_t lo,
                                std::uint64_t hi, std::optional<std::uint64_t> fallback) {
  auto it = body.find(key);
  if (it == body.end()) {
    if (fallback) return *fallback;
    return InvalidArgumentError(std::string("field '") + key + "' is required");
  }
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if (it->is_number_integer() && !it->is_number_unsigned()) {
    return InvalidArgumentError(std::string("field '") + key + "' is negative; it must be " +
                                range);
  }
  if (!it->is_number_unsigned()) {
    return InvalidArgumentError(std::string("field '") + key + "' must be an integer " + range +
                                (it->is_number_float() ? " (got a fraction or a number too large)"
                                                       : " (got " + std::string(it->type_name()) +
                                                             ")"));
  }
  const auto v = it->get<std::uint64_t>();
  if (v < lo || v > hi) {
    return InvalidArgumentError(std::string("field '") + key + "' is " + std::to_string(v) +
                                "; it must be " + range);
  }
  return v;
}

Result<std::string> StringField(const json& body, const char* key, std::string fallback) {
  auto it = body.find(key);
  if (it == body.end()) return fallback;
  if (!it->is_string()) {
    return InvalidArgumentError(std::string("field '") + key + "' must be a string (got " +
                                it->type_name() + ")");
  }
  return it->get<std::string>();
}

std::optional<EtagList> ParseEtags(std::string_view text) {
  EtagList list;
  auto skip = [&] {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  };
  skip();
  if (text == "*") {
    list.any = true;
    return list;
  }
  while (true) {
    skip();
    bool weak = false;
    if (text.substr(0, 2) == "W/") {
      weak = true;
      text.remove_prefix(2);
    }
    if (text.empty() || text.front() != '"') return std::nullopt;
    const auto close = text.find('"', 1);
    if (close == std::string_view::npos) return std::nullopt;
    list.tags.emplace_back(weak, std::string(text.substr(1, close - 1)));
    text.remove_prefix(close + 1);
    skip();
    if (text.empty()) break;
    if (text.front() != ',') return std::nullopt;
    text.remove_prefix(1);
  }
  return list;
}

bool EtagMatches(const EtagList& list, std::uint64_t version, bool weak_comparison) {
  if (version == 0) return false;
  if (list.any) return true;
  const std::string current = std::to_string(version);
  for (const auto& [weak, tag] : list.tags) {
    if (tag == current && (weak_comparison || !weak)) return true;
  }
  return false;
}

Result<std::uint64_t> QueryNumber(const std::string& key, const std::string& value,
                                  std::uint64_t max_wait_ms) {
  auto parsed = ParseTokenText(value, key);
  if (!parsed.ok() && value != "0") {
    return InvalidArgumentError(key + " must be a non-negative integer, not '" +
                                value.substr(0, 40) + "'");
  }
  const std::uint64_t n = parsed.ok() ? *parsed : 0;
  if (key == "wait_ms" && n > max_wait_ms) {
    return InvalidArgumentError("wait_ms must be 0.." + std::to_string(max_wait_ms) +
                                " (the server's --max-wait)");
  }
  return n;
}

Result<std::uint64_t> TokenBody(const std::string& body, const char* key) {
  auto parsed = ParseBodyObject(body);
  if (!parsed.ok()) return parsed.status();
  Status fields = CheckFields(*parsed, {std::string_view(key)});
  if (!fields.ok()) return fields;
  return UintField(*parsed, key, 1, wire::kMaxJsonToken - 1, std::nullopt);
}

}  // namespace ordo::http
