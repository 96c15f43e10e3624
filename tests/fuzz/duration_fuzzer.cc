// Fuzzes ordo::ParseDuration: an accepted duration is not negative and survives
// FormatDuration -> ParseDuration unchanged; a rejected one is kInvalidArgument.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ordo/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = ordo::ParseDuration(text);
  if (!d.ok()) {
    if (d.status().code() != ordo::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (d->count() < 0) std::abort();
  auto again = ordo::ParseDuration(ordo::FormatDuration(*d));
  if (!again.ok() || *again != *d) {
    __builtin_printf("round trip of %lld ms failed\n", static_cast<long long>(d->count()));
    std::abort();
  }
  return 0;
}
