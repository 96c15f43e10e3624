// ordo/duration.h — durations as people write them: "500ms", "30s", "5m", "1h", "1.5".
//
// A bare number means seconds (as flock(1)'s -w) and may be fractional. Thread-safe.
#ifndef ORDO_DURATION_H_
#define ORDO_DURATION_H_

#include <chrono>
#include <string>
#include <string_view>

#include "ordo/status.h"

namespace ordo {

// kInvalidArgument for an empty, negative, malformed or overflowing duration.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// "250ms", "30s", "5m", "1h" — the shortest exact form.
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace ordo

#endif  // ORDO_DURATION_H_
