// Fuzzes ordo::ValidateName against the rule written out independently: 1-128 bytes of
// [A-Za-z0-9._:-], not starting with '.'. Whatever it accepts must be a safe single path
// component (no '/', no NUL, not "." or "..").
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ordo/names.h"

namespace {

bool Reference(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  for (unsigned char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view name(reinterpret_cast<const char*>(data), size);
  const ordo::Status s = ordo::ValidateName(name, "key");
  if (s.ok() != Reference(name)) {
    __builtin_printf("ValidateName disagrees with the rule: ok=%d\n", s.ok());
    std::abort();
  }
  if (s.ok()) {
    if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos ||
        name == "." || name == "..") {
      std::abort();
    }
  } else if (s.code() != ordo::StatusCode::kInvalidArgument ||
             s.message().rfind("key", 0) != 0) {
    __builtin_printf("bad error: %s\n", s.ToString().c_str());
    std::abort();
  }
  return 0;
}
