// Fuzzes the REST server's bearer-token authentication (http/src/auth.h): the
// auth file parser and the "Authorization" header lookup. The input is "<auth
// file>\0<header value>\0<name>". Properties: Parse either succeeds or says
// kInvalidArgument with a message; Find returns -1 or a valid index; a header
// that is exactly "Bearer " + a configured token finds that token.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto first = input.find('\0');
  const std::string_view file = input.substr(0, first);
  std::string_view header, name;
  if (first != std::string_view::npos) {
    const std::string_view rest = input.substr(first + 1);
    const auto second = rest.find('\0');
    header = rest.substr(0, second);
    if (second != std::string_view::npos) name = rest.substr(second + 1);
  }
  auto auth = ordo::http::Authenticator::Parse(file, "fuzz");
  if (!auth.ok()) {
    if (auth.status().code() != ordo::StatusCode::kInvalidArgument ||
        auth.status().message().empty()) {
      std::abort();
    }
    return 0;
  }
  const int who = auth->Find(header);
  if (who < -1 || who >= static_cast<int>(auth->size())) std::abort();
  if (who >= 0) (void)auth->Allows(who, name);
  // The first token of the file's first entry line must be found when presented as is. (The
  // file format: lines trimmed of ' ', '\t', '\r'; blank and '#' lines skipped; the token
  // ends at the first ' ' or '\t'.)
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == '\r')) {
      v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) {
      v.remove_suffix(1);
    }
    return v;
  };
  std::string_view text = file;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    const std::string token(line.substr(0, line.find_first_of(" \t")));
    if (auth->Find("Bearer " + token) < 0) {
      __builtin_printf("configured token not found\n");
      std::abort();
    }
    break;
  }
  return 0;
}
