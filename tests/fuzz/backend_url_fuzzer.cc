// Fuzzes ordo::ParseBackendUrl.
//
// Properties beyond "no crash, no sanitizer report":
//   - a parsed URL is well-formed: a lower-case scheme of [a-z0-9+.-], a port of 1-65535, no
//     user, password or host without an authority;
//   - CheckQuery({}) refuses exactly the URLs that have query parameters;
//   - a password never leaks: the input is also embedded as the password of a PostgreSQL URL
//     (after a marker), and neither Masked() nor any error message may contain the marker.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ordo/registry.h"

namespace {

void Require(bool condition, const char* what) {
  if (!condition) {
    __builtin_printf("property violated: %s\n", what);
    std::abort();
  }
}

void CheckParsed(const ordo::BackendUrl& url) {
  Require(!url.scheme.empty(), "empty scheme accepted");
  for (char c : url.scheme) {
    Require((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.',
            "scheme not lower-case [a-z0-9+.-]");
  }
  if (!url.port.empty()) {
    Require(url.port.size() <= 5, "port longer than 5 digits");
    for (char c : url.port) Require(c >= '0' && c <= '9', "port not all digits");
    const long port = std::strtol(url.port.c_str(), nullptr, 10);
    Require(port >= 1 && port <= 65535, "port out of range");
  }
  if (!url.has_authority) {
    Require(url.user.empty() && url.password.empty() && url.host.empty() && url.port.empty(),
            "user, password, host or port without an authority");
  }
  Require(url.CheckQuery({}).ok() == url.query.empty(), "CheckQuery({}) disagrees with query");
  for (const auto& [key, value] : url.query) Require(!key.empty(), "empty query key");
  (void)url.Masked();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto url = ordo::ParseBackendUrl(input); url.ok()) {
    CheckParsed(*url);
  } else {
    Require(url.status().code() == ordo::StatusCode::kInvalidArgument,
            "a malformed URL is not kInvalidArgument");
    Require(!url.status().message().empty(), "an error without a message");
  }

  // The secret may hold anything that keeps it inside the userinfo: no '/', '?', '#', '@'.
  std::string secret = "S3CRET";
  for (char c : input) {
    if (c != '/' && c != '?' && c != '#' && c != '@') secret.push_back(c);
  }
  const std::string text = "postgresql://user:" + secret + "@db.example:5432/ordo?strategy=cas";
  auto url = ordo::ParseBackendUrl(text);
  const std::string shown = url.ok() ? url->Masked() : url.status().message();
  Require(shown.find("S3CRET") == std::string::npos, "the password leaked");
  if (url.ok()) {
    Require(url->host == "db.example" && url->port == "5432", "the password changed the host");
    const ordo::Status unknown = url->CheckQuery({"other"});
    Require(unknown.message().find("S3CRET") == std::string::npos,
            "the password leaked into CheckQuery's message");
  }
  return 0;
}
