// Internal to the middleware library: DefaultOwner written into a caller's string, so that a
// string reused across calls keeps its capacity and the id costs no allocation.
#ifndef ORDO_MIDDLEWARE_DEFAULT_OWNER_H_
#define ORDO_MIDDLEWARE_DEFAULT_OWNER_H_

#include <string>

namespace ordo::internal {

// Replaces *out with a fresh owner id (what DefaultOwner returns). Thread-safe.
void AssignDefaultOwner(std::string* out);

}  // namespace ordo::internal

#endif  // ORDO_MIDDLEWARE_DEFAULT_OWNER_H_
