// ordo/names.h — the one rule for lock names, fenced keys and object keys.
//
// A name is 1–128 bytes of [A-Za-z0-9._:-] and does not start with '.'. The rule keeps every
// name a safe single path component (no '/', no "..", no NUL, no hidden files) for the file
// backends and a safe identifier everywhere else. Anything else is kInvalidArgument with a
// message naming the problem, and no backend touches storage for it.
#ifndef ORDO_NAMES_H_
#define ORDO_NAMES_H_

#include <cstddef>
#include <string_view>

#include "ordo/status.h"

namespace ordo {

inline constexpr std::size_t kMaxNameLength = 128;

// `what` names the thing in the message ("lock name", "key", …). Thread-safe, never blocks.
Status ValidateName(std::string_view name, std::string_view what = "lock name");

}  // namespace ordo

#endif  // ORDO_NAMES_H_
