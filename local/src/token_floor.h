// Raising a flock:// or fcntl:// lock's token counter, for moving a lock from one directory to
// another without its tokens going backwards (`ordo run` uses it when its default directory
// changed: the new lock file must issue tokens above the old one's).
//
// Thread-safe and safe across processes: the counter is changed under the lock file's guard, as
// every token is issued.
#ifndef ORDO_LOCAL_TOKEN_FLOOR_H_
#define ORDO_LOCAL_TOKEN_FLOOR_H_

#include <cstdint>
#include <string>

#include "ordo/status.h"

namespace ordo::local {

// Makes every token that lock `name` in lock directory `dir` issues from now on larger than
// `floor` (creating the lock file if missing); a counter already at or above it is left alone.
// A raised counter is on disk (fdatasync) before this returns. `name` must be a valid lock name.
// Errors: as opening the directory and the lock file for an acquisition; kUnavailable when the
// guard stays busy (see LockShort).
Status RaiseTokenFloor(const std::string& dir, const std::string& name, std::uint64_t floor);

}  // namespace ordo::local

#endif  // ORDO_LOCAL_TOKEN_FLOOR_H_
