#include "ordo/duration.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace ordo {

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const std::string t(text);
  if (t.empty()) return InvalidArgumentError("duration is empty");
  std::size_t i = 0;
  bool dot = false;
  bool digits = false;
  for (; i < t.size(); ++i) {
    if (t[i] >= '0' && t[i] <= '9') {
      digits = true;
    } else if (t[i] == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digits) {
    return InvalidArgumentError("duration '" + t +
                                "' is not a number with an optional unit (500ms, 30s, 5m, 1h)");
  }
  const std::string unit = t.substr(i);
  double scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else {
    return InvalidArgumentError("duration '" + t + "' has unknown unit '" + unit +
                                "'; use ms, s, m or h");
  }
  const double ms = std::strtod(t.substr(0, i).c_str(), nullptr) * scale;
  // 10 years is far beyond any ttl or wait ordo accepts; it keeps the cast defined.
  if (!std::isfinite(ms) || ms > 315'360'000'000.0) {
    return InvalidArgumentError("duration '" + t + "' is too large");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

std::string FormatDuration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace ordo
