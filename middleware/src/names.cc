#include "ordo/names.h"

#include <array>
#include <string>

namespace ordo {
namespace {

// One table lookup per byte: every acquire and release validates its name, so this loop is on
// the hot path of the in-process backend.
constexpr std::array<bool, 256> kAllowed = [] {
  std::array<bool, 256> allowed{};
  for (int c = 0; c < 256; ++c) {
    allowed[static_cast<std::size_t>(c)] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                           (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                                           c == ':' || c == '-';
  }
  return allowed;
}();

bool AllowedChar(unsigned char c) { return kAllowed[c]; }

std::string Describe(unsigned char c) {
  if (c >= 0x21 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static const char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 15];
}

}  // namespace

Status ValidateName(std::string_view name, std::string_view what) {
  // Every acquire, renew, release and store call validates its names: the common, valid case
  // allocates nothing; messages are built only for a refusal.
  if (!name.empty() && name.size() <= kMaxNameLength && name.front() != '.') {
    bool valid = true;
    for (char c : name) valid &= AllowedChar(static_cast<unsigned char>(c));
    if (valid) return OkStatus();
  }
  const std::string w(what);
  if (name.empty()) return InvalidArgumentError(w + " is empty");
  if (name.size() > kMaxNameLength) {
    return InvalidArgumentError(w + " is " + std::to_string(name.size()) +
                                " bytes long; the limit is " + std::to_string(kMaxNameLength));
  }
  if (name.front() == '.') {
    return InvalidArgumentError(w + " '" + std::string(name) + "' starts with '.'");
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (!AllowedChar(c)) {
      return InvalidArgumentError(w + " has " + Describe(c) + " at offset " + std::to_string(i) +
                                  "; allowed are A-Z a-z 0-9 . _ : -");
    }
  }
  return OkStatus();
}

}  // namespace ordo
