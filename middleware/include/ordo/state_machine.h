// ordo/state_machine.h — guarded state transitions on a VersionedStore.
//
// A StateMachine holds a table of allowed edges. Transition(key, from, to) refuses an edge not
// in the table (kInvalidArgument) and a current state other than `from` (kVersionMismatch),
// and otherwise writes `to` by compare-and-swap on the version it read, so that of two
// concurrent transitions from the same state exactly one wins. The state is stored as the JSON
// string "\"state\"" so that the HTTP object API shows it as a JSON document.
//
// Example: {running→upgrading, upgrading→running, running→deleting}: a deployment may go from
// upgrading back to running, but not straight from upgrading to deleting.
//
// Guarded transitions (the "leader plus CAS" pattern): Transition(key, from, to, token,
// lock_name) writes by fenced CAS (VersionedStore's token overload), so a leader that was
// deposed — paused past its lease while another took over — is refused with kStaleToken even
// when the version it read is still current. Pass the election's term as `token` and its name as
// `lock_name` to also require that the caller still leads.
//
// Thread safety: safe for concurrent use if the store is (all ordo stores are).
#ifndef ORDO_STATE_MACHINE_H_
#define ORDO_STATE_MACHINE_H_

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ordo/status.h"
#include "ordo/store.h"

namespace ordo {

class StateMachine {
 public:
  using Edge = std::pair<std::string, std::string>;
  StateMachine(VersionedStore& store, std::vector<Edge> allowed);

  // Creates the object in `initial` state. kVersionMismatch if it exists.
  Result<std::uint64_t> Create(std::string_view key, std::string_view initial);
  // The current state. kNotFound if absent.
  Result<std::string> Current(std::string_view key);
  // Moves from `from` to `to`; returns the new version.
  Result<std::uint64_t> Transition(std::string_view key, std::string_view from,
                                   std::string_view to);
  // The same, by fenced CAS with `token` (and strict mode with `lock_name`). kStaleToken when
  // the token is below the object's fence or, with a lock name, not a live holder.
  Result<std::uint64_t> Transition(std::string_view key, std::string_view from,
                                   std::string_view to, std::uint64_t token,
                                   std::string_view lock_name = {});
  bool Allowed(std::string_view from, std::string_view to) const;

 private:
  // Validates the edge and reads the object; returns its version when it is in `from`.
  Result<std::uint64_t> Check(std::string_view key, std::string_view from, std::string_view to);

  VersionedStore& store_;
  std::set<Edge, std::less<>> allowed_;
};

}  // namespace ordo

#endif  // ORDO_STATE_MACHINE_H_
