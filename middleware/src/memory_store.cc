#include "ordo/memory_store.h"

#include <limits>

#include "ordo/names.h"

namespace ordo {

MemoryFencedStore::MemoryFencedStore(HolderCheck live_holder)
    : live_holder_(std::move(live_holder)) {}

// Checks `token` against the key's fence (and, in strict mode, against the lock's live holders)
// and raises the fence. Called with mu_ held, so check and raise are one atomic step.
Status MemoryFencedStore::Admit(Entry& entry, std::string_view key, std::uint64_t token,
                                std::string_view lock_name) {
  if (token < entry.fence) {
    return StaleTokenError("token " + std::to_string(token) + " is older than token " +
                               std::to_string(entry.fence) + " already seen for key '" +
                               std::string(key) + "'",
                           entry.fence);
  }
  if (!lock_name.empty()) {
    if (!live_holder_) return InvalidArgumentError("this store has no lock table for strict mode");
    Status held = live_holder_(lock_name, token);
    if (!held.ok()) {
      if (held.code() == StatusCode::kStaleToken) held.set_current(entry.fence);
      return held;
    }
  }
  entry.fence = token;
  return OkStatus();
}

Status ValidateFencedArgs(std::string_view key, std::uint64_t token, std::string_view lock_name,
                          bool token_required) {
  ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
  if (token_required && token == 0) return InvalidArgumentError("fencing token 0 is never issued");
  // Tokens are stored as signed 64-bit integers by the database backends; none is ever issued
  // above that, so a larger one can only be a client's mistake.
  if (token > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return InvalidArgumentError("fencing token " + std::to_string(token) + " is out of range");
  }
  if (!lock_name.empty()) {
    ORDO_RETURN_IF_ERROR(ValidateName(lock_name, "lock name"));
    if (token == 0) return InvalidArgumentError("strict mode needs a fencing token");
  }
  return OkStatus();
}

Result<FencedWrite> MemoryFencedStore::Write(std::string_view key, std::string_view data,
                                             std::uint64_t token, std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/true));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  Entry scratch;
  Entry& entry = it == entries_.end() ? scratch : it->second;
  ORDO_RETURN_IF_ERROR(Admit(entry, key, token, lock_name));
  entry.has_value = true;
  entry.data.assign(data);
  entry.version += 1;
  FencedWrite out{entry.fence, entry.version};
  if (it == entries_.end()) entries_.emplace(std::string(key), std::move(scratch));
  return out;
}

Result<FencedValue> MemoryFencedStore::Read(std::string_view key, std::uint64_t token,
                                            std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/false));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (token != 0) {
    if (it == entries_.end()) {
      Entry scratch;
      ORDO_RETURN_IF_ERROR(Admit(scratch, key, token, lock_name));
      it = entries_.emplace(std::string(key), std::move(scratch)).first;
    } else {
      ORDO_RETURN_IF_ERROR(Admit(it->second, key, token, lock_name));
    }
  }
  if (it == entries_.end() || !it->second.has_value) {
    return NotFoundError("key '" + std::string(key) + "' has no value");
  }
  return FencedValue{it->second.data, it->second.fence, it->second.version};
}

Status StaleObjectToken(std::string_view key, std::uint64_t token, std::uint64_t fence) {
  return StaleTokenError("token " + std::to_string(token) + " is older than token " +
                             std::to_string(fence) + " already used to change object '" +
                             std::string(key) + "'",
                         fence);
}

Status ObjectVersionMismatch(std::string_view key, std::uint64_t current,
                             std::uint64_t expected) {
  return VersionMismatchError("object '" + std::string(key) + "' is at version " +
                                  std::to_string(current) + ", not " + std::to_string(expected),
                              current);
}

Status ValidateCasArgs(std::string_view key, std::uint64_t expected_version, bool fenced,
                       std::uint64_t token, std::string_view lock_name) {
  if (fenced) {
    ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/true));
  } else {
    ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
  }
  if (expected_version > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return InvalidArgumentError("version " + std::to_string(expected_version) +
                                " is out of range");
  }
  return OkStatus();
}

MemoryVersionedStore::MemoryVersionedStore(MemoryFencedStore::HolderCheck live_holder)
    : live_holder_(std::move(live_holder)) {}

Result<Versioned> MemoryVersionedStore::Get(std::string_view key) {
  ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end() || it->second.current.version == 0) {
    return NotFoundError("object '" + std::string(key) + "' not found");
  }
  return it->second.current;
}

Result<std::uint64_t> MemoryVersionedStore::CompareAndSwap(std::string_view key,
                                                           std::uint64_t expected_version,
                                                           std::string_view value) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, false, 0, {}));
  return Swap(key, expected_version, value, 0, {});
}

Result<std::uint64_t> MemoryVersionedStore::CompareAndSwap(std::string_view key,
                                                           std::uint64_t expected_version,
                                                           std::string_view value,
                                                           std::uint64_t token,
                                                           std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, true, token, lock_name));
  if (!lock_name.empty() && !live_holder_) {
    return InvalidArgumentError("this store has no lock table for strict mode");
  }
  return Swap(key, expected_version, value, token, lock_name);
}

Result<std::uint64_t> MemoryVersionedStore::Swap(std::string_view key,
                                                 std::uint64_t expected_version,
                                                 std::string_view value, std::uint64_t token,
                                                 std::string_view lock_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  Object absent;
  const Object& object = it == objects_.end() ? absent : it->second;
  if (token != 0) {
    if (token < object.fence) return StaleObjectToken(key, token, object.fence);
    if (!lock_name.empty()) {
      Status held = live_holder_(lock_name, token);
      if (!held.ok()) {
        if (held.code() == StatusCode::kStaleToken) held.set_current(object.fence);
        return held;
      }
    }
  }
  if (object.current.version != expected_version) {
    return ObjectVersionMismatch(key, object.current.version, expected_version);
  }
  if (it == objects_.end()) it = objects_.emplace(std::string(key), Object{}).first;
  it->second.current.value.assign(value);
  it->second.current.version += 1;
  if (token > it->second.fence) it->second.fence = token;
  return it->second.current.version;
}

}  // namespace ordo
