// ordo/ordo.h — everything a user of ordo needs.
//
//   #include <ordo/ordo.h>
//   auto locker = ordo::Open("flock:///tmp/locks");
//   auto lease = (*locker)->Acquire({.name = "nightly", .ttl = std::chrono::seconds(30)});
//   if (lease.ok()) { use(lease->token); (*locker)->Release(*lease).IgnoreError(); }
//
// status.h        Status, Result<T>, the codes and what to do with each
// lock.h          LockRequest, Lease, LockState, Locker, the lease lifecycle
// registry.h      Open(url), the backend URLs
// names.h         the lock-name rule
// scoped_lease.h  RAII + keep-alive
// store.h         FencedStore, VersionedStore
// state_machine.h guarded transitions on a VersionedStore
// memory_store.h  in-process stores
// duration.h      "30s", "500ms" parsing
// election.h      leader election whose term is the fencing token
// (RangeLock, byte-range locks of one shared file, is <ordo_local/range_lock.h>.)
#ifndef ORDO_ORDO_H_
#define ORDO_ORDO_H_

#include "ordo/duration.h"
#include "ordo/election.h"
#include "ordo/lock.h"
#include "ordo/memory_store.h"
#include "ordo/names.h"
#include "ordo/registry.h"
#include "ordo/scoped_lease.h"
#include "ordo/state_machine.h"
#include "ordo/status.h"
#include "ordo/store.h"
#include "ordo/version.h"

#endif  // ORDO_ORDO_H_
