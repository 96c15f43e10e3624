// FencedStore and VersionedStore for the file backends: one file per key under
// <lock dir>/.fenced/ and <lock dir>/.objects/ (keys cannot start with '.', so they never clash
// with lock files or with the temporary files kept there).
//
// Cross-process atomicity of read-check-write: a writer takes an exclusive OFD lock on the key's
// file, reads it, checks, writes the new content to "<dir>/.tmp-<key>" and renames it over the
// key. Readers without a token take no lock: rename is atomic, so they see the old or the new
// file, never a torn one. A writer that waited for the lock checks, once it has it, that the
// name still points at the inode it locked (the previous writer replaced it) and starts over if
// not. Only the holder of the lock on the current inode writes the temporary file, so one name
// per key is enough, and one left behind by a killed writer is simply overwritten.
//
// Key file (little-endian): "ordokv01", fence (u64), version (u64), data length (u64), data.
// Version 0 means "no value" (a fenced read of a missing key stores only its fence). An empty
// file is a key that was never written.
//
// Thread-safe and process-safe. Errors: as FencedStore/VersionedStore; I/O failures through
// FromErrno (kUnavailable for EIO/ENOSPC/…), a malformed key file is kInternal.
#ifndef ORDO_LOCAL_FILE_STORE_H_
#define ORDO_LOCAL_FILE_STORE_H_

#include <functional>
#include <string>

#include "file_util.h"
#include "ordo/store.h"

namespace ordo::local {

// The contents of one key file.
struct KeyRecord {
  std::uint64_t fence = 0;
  std::uint64_t version = 0;
  std::string data;
};

// One directory of key files. Does not own `dirfd`, which must outlive it.
class KeyDirectory {
 public:
  KeyDirectory(int dirfd, std::string path, bool durable)
      : dirfd_(dirfd), path_(std::move(path)), durable_(durable) {}

  // Opens the key's file and locks it exclusively (OFD lock, waits up to kShortLockTimeout).
  // With `create` == false a missing key gives an invalid (empty) UniqueFd.
  Result<UniqueFd> LockKey(std::string_view key, bool create) const;
  // Reads the file behind `fd` (locked or not).
  Result<KeyRecord> Load(int fd, std::string_view key) const;
  // Reads the key without locking; a missing key is an empty record.
  Result<KeyRecord> LoadUnlocked(std::string_view key) const;
  // Replaces the key's file by rename. REQUIRES: the key locked by LockKey.
  Status Replace(std::string_view key, const KeyRecord& record) const;

 private:
  std::string Shown(std::string_view key) const { return path_ + "/" + std::string(key); }

  int dirfd_;
  std::string path_;
  bool durable_;
};

// Strict mode: checks that `token` is a live holder of `lock_name` and returns a descriptor
// that keeps it so until closed (it holds the lock file's guard shared, and a Release waits for
// the guard), so the check and the write are one atomic step. kStaleToken when not live.
using LiveHolderPin =
    std::function<Result<UniqueFd>(std::string_view lock_name, std::uint64_t token)>;

class FileFencedStore final : public FencedStore {
 public:
  FileFencedStore(int dirfd, std::string path, bool durable, LiveHolderPin pin)
      : keys_(dirfd, std::move(path), durable), pin_(std::move(pin)) {}

  Result<FencedWrite> Write(std::string_view key, std::string_view data, std::uint64_t token,
                            std::string_view lock_name = {}) override;
  Result<FencedValue> Read(std::string_view key, std::uint64_t token = 0,
                           std::string_view lock_name = {}) override;

 private:
  // Checks `token` against the record's fence (and the live holder in strict mode). On
  // success `pin` keeps the holder live until the caller has written.
  Status Admit(const KeyRecord& record, std::string_view key, std::uint64_t token,
               std::string_view lock_name, UniqueFd* pin) const;

  KeyDirectory keys_;
  LiveHolderPin pin_;
};

// An object's key file keeps its fence too: the highest token a fenced CAS wrote with.
class FileVersionedStore final : public VersionedStore {
 public:
  FileVersionedStore(int dirfd, std::string path, bool durable, LiveHolderPin pin)
      : keys_(dirfd, std::move(path), durable), pin_(std::move(pin)) {}

  Result<Versioned> Get(std::string_view key) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value) override;
  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value, std::uint64_t token,
                                       std::string_view lock_name = {}) override;

 private:
  // The CAS with the key file locked; `token` 0 is a plain CAS.
  Result<std::uint64_t> Swap(std::string_view key, std::uint64_t expected_version,
                             std::string_view value, std::uint64_t token,
                             std::string_view lock_name);

  KeyDirectory keys_;
  LiveHolderPin pin_;
};

}  // namespace ordo::local

#endif  // ORDO_LOCAL_FILE_STORE_H_
