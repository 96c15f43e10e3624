// Request-field parsing of the REST server: tokens in headers, JSON bodies and their fields,
// entity-tag lists. Each parser returns kInvalidArgument naming the field and the problem.
// Pure functions: thread-safe, never block.
#ifndef ORDO_HTTP_SRC_FIELDS_H_
#define ORDO_HTTP_SRC_FIELDS_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ordo/status.h"

namespace ordo::http {

// A fencing token or a count written as decimal text (a header, a query parameter): digits
// only, no sign, no leading zero, 1 .. 2^53-1.
Result<std::uint64_t> ParseTokenText(std::string_view text, std::string_view what);

// A JSON object body; an empty body is {}. Duplicate keys are refused (a proxy that reads the
// first of two keys would see a different request than the server, which reads the last).
Result<nlohmann::json> ParseBodyObject(const std::string& body);

// Whether `text` is one JSON document without duplicate keys in any object.
Status CheckJsonDocument(const std::string& text, std::string_view what);

// Refuses fields of `body` that are not in `known`.
Status CheckFields(const nlohmann::json& body, std::initializer_list<std::string_view> known);

// A non-negative integer field within [lo, hi], or `fallback` when absent.
Result<std::uint64_t> UintField(const nlohmann::json& body, const char* key, std::uint64_t lo,
                                std::uint64_t hi, std::optional<std::uint64_t> fallback);

// A body that is exactly {"token": N} (release, revoke) or {"term": N} (resign, with `key`
// "term"): the fencing token, 1 .. 2^53-1.
Result<std::uint64_t> TokenBody(const std::string& body, const char* key = "token");

// A numeric query parameter of a long-poll (after, after_term, wait_ms): a non-negative
// integer; wait_ms at most `max_wait_ms` (the server's --max-wait).
Result<std::uint64_t> QueryNumber(const std::string& key, const std::string& value,
                                  std::uint64_t max_wait_ms);

// A string field, or `fallback` when absent.
Result<std::string> StringField(const nlohmann::json& body, const char* key,
                                std::string fallback);

// RFC 9110 entity-tag lists: `*`, or `"a", W/"b", …`.
struct EtagList {
  bool any = false;
  std::vector<std::pair<bool, std::string>> tags;  // (weak, opaque-tag without quotes)
};
std::optional<EtagList> ParseEtags(std::string_view text);

// Whether the current version (0 = absent) matches the list: strong comparison for If-Match,
// weak for If-None-Match (RFC 9110 §13.1.1, §13.1.2).
bool EtagMatches(const EtagList& list, std::uint64_t version, bool weak_comparison);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_FIELDS_H_
