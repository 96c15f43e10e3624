// ordo/memory_store.h — in-process FencedStore and VersionedStore.
//
// The inproc: backend's stores, also handy in tests of code that takes a FencedStore. State is
// lost with the process. Safe for concurrent use from many threads; never blocks on anything
// but a short internal mutex.
#ifndef ORDO_MEMORY_STORE_H_
#define ORDO_MEMORY_STORE_H_

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "ordo/store.h"

namespace ordo {

class MemoryFencedStore final : public FencedStore {
 public:
  // Strict mode asks `live_holder(lock_name, token)`: OK when the token is a live holder of the
  // lock, kStaleToken (or another error) when not. Without it, strict mode is refused with
  // kInvalidArgument.
  using HolderCheck = std::function<Status(std::string_view lock_name, std::uint64_t token)>;
  explicit MemoryFencedStore(HolderCheck live_holder = nullptr);

  Result<FencedWrite> Write(std::string_view key, std::string_view data, std::uint64_t token,
                            std::string_view lock_name = {}) override;
  Result<FencedValue> Read(std::string_view key, std::uint64_t token = 0,
                           std::string_view lock_name = {}) override;

 private:
  struct Entry {
    bool has_value = false;
    std::string data;
    std::uint64_t fence = 0;
    std::uint64_t version = 0;
  };
  Status Admit(Entry& entry, std::string_view key, std::uint64_t token,
               std::string_view lock_name);

  HolderCheck live_holder_;
  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_
};

class MemoryVersionedStore final : public VersionedStore {
 public:
  // Strict mode asks `live_holder` as MemoryFencedStore does; without it, a fenced CAS with a
  // lock name is refused with kInvalidArgument.
  explicit MemoryVersionedStore(MemoryFencedStore::HolderCheck live_holder = nullptr);

  Result<Versioned> Get(std::string_view key) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value, std::uint64_t token,
                                       std::string_view lock_name = {}) override;

 private:
  struct Object {
    Versioned current;
    std::uint64_t fence = 0;
  };
  // The CAS under mu_; `token` 0 is a plain CAS.
  Result<std::uint64_t> Swap(std::string_view key, std::uint64_t expected_version,
                             std::string_view value, std::uint64_t token,
                             std::string_view lock_name);

  MemoryFencedStore::HolderCheck live_holder_;
  std::mutex mu_;
  std::map<std::string, Object, std::less<>> objects_;  // guarded by mu_
};

}  // namespace ordo

#endif  // ORDO_MEMORY_STORE_H_
