// JSON for `ordo lock`: the same field names as the HTTP API (DESIGN.md).
#ifndef ORDO_CLI_JSON_OUTPUT_H_
#define ORDO_CLI_JSON_OUTPUT_H_

#include <chrono>
#include <string>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo::cli {

// RFC 3339, UTC, milliseconds: "2024-05-01T12:00:00.250Z".
std::string Rfc3339Millis(std::chrono::system_clock::time_point t);

// {"name","owner","token","mode","expires_at","ttl_ms"}
std::string LeaseJson(const Lease& lease);
// {"name","token","released":true}
std::string ReleasedJson(const Lease& lease);
// {"name","last_token","holders":[{"owner","token","mode","expires_at"}…]}
std::string StateJson(const LockState& state);
// {"error":"lock_held","message":"…"}
std::string ErrorJson(const Status& status);

}  // namespace ordo::cli

#endif  // ORDO_CLI_JSON_OUTPUT_H_
