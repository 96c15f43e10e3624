#include "file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "ordo/names.h"

namespace ordo::local {
namespace {

constexpr char kMagic[8] = {'o', 'r', 'd', 'o', 'k', 'v', '0', '1'};
constexpr std::size_t kHeaderSize = 32;

std::string TempName(std::string_view key) { return ".tmp-" + std::string(key); }

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

Result<UniqueFd> KeyDirectory::LockKey(std::string_view key, bool create) const {
  const std::string what = "lock key file '" + Shown(key) + "'";
  while (true) {
    const int fd = OpenAt(dirfd_, key, O_RDWR | (create ? O_CREAT : 0));
    if (fd == -ENOENT && !create) return UniqueFd();
    if (fd < 0) return FromErrno(-fd, "open key file '" + Shown(key) + "'");
    UniqueFd file(fd);
    ORDO_RETURN_IF_ERROR(LockShort(file.get(), F_WRLCK, 0, 0, what));
    // The previous lock holder may have replaced the file while we waited: then the lock we hold
    // is on an inode nobody reads any more, and we start over on the current one.
    struct stat locked{};
    struct stat current{};
    if (::fstat(file.get(), &locked) != 0) return FromErrno(errno, what);
    const std::string name(key);
    if (::fstatat(dirfd_, name.c_str(), &current, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return FromErrno(errno, what);
    }
    if (SameFile(locked, current)) {
      if (!S_ISREG(locked.st_mode)) {
        return InvalidArgumentError("key file '" + Shown(key) + "' is not a regular file");
      }
      return file;
    }
  }
}

Result<KeyRecord> KeyDirectory::Load(int fd, std::string_view key) const {
  const std::string what = "read key file '" + Shown(key) + "'";
  struct stat st{};
  if (::fstat(fd, &st) != 0) return FromErrno(errno, what);
  KeyRecord record;
  if (st.st_size == 0) return record;
  std::string buf(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  ORDO_RETURN_IF_ERROR(ReadAt(fd, buf.data(), buf.size(), 0, &got, what));
  const auto* p = reinterpret_cast<const unsigned char*>(buf.data());
  if (got < kHeaderSize || std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    return InternalError("key file '" + Shown(key) + "' is malformed");
  }
  record.fence = DecodeU64(p + 8);
  record.version = DecodeU64(p + 16);
  const std::uint64_t length = DecodeU64(p + 24);
  if (length != got - kHeaderSize) {
    return InternalError("key file '" + Shown(key) + "' is truncated");
  }
  record.data.assign(buf, kHeaderSize, std::string::npos);
  return record;
}

Result<KeyRecord> KeyDirectory::LoadUnlocked(std::string_view key) const {
  const int fd = OpenAt(dirfd_, key, O_RDONLY);
  if (fd == -ENOENT) return KeyRecord{};
  if (fd < 0) return FromErrno(-fd, "open key file '" + Shown(key) + "'");
  UniqueFd file(fd);
  return Load(file.get(), key);
}

Status KeyDirectory::Replace(std::string_view key, const KeyRecord& record) const {
  const std::string temp = TempName(key);
  const std::string what = "write key file '" + Shown(key) + "'";
  std::string buf(kHeaderSize, '\0');
  auto* p = reinterpret_cast<unsigned char*>(buf.data());
  std::memcpy(p, kMagic, sizeof(kMagic));
  EncodeU64(record.fence, p + 8);
  EncodeU64(record.version, p + 16);
  EncodeU64(record.data.size(), p + 24);
  buf += record.data;
  const int fd = OpenAt(dirfd_, temp, O_WRONLY | O_CREAT | O_TRUNC);
  if (fd < 0) return FromErrno(-fd, what);
  UniqueFd file(fd);
  Status s = WriteAt(file.get(), buf.data(), buf.size(), 0, what);
  if (s.ok() && durable_ && ::fdatasync(file.get()) != 0) s = FromErrno(errno, what);
  file.Reset();
  if (s.ok() && ::renameat(dirfd_, temp.c_str(), dirfd_, std::string(key).c_str()) != 0) {
    s = FromErrno(errno, what);
  }
  if (!s.ok()) {
    ::unlinkat(dirfd_, temp.c_str(), 0);
    return s;
  }
  // The rename itself is on disk only once the directory is.
  if (durable_ && ::fsync(dirfd_) != 0) return FromErrno(errno, what);
  return OkStatus();
}

Status FileFencedStore::Admit(const KeyRecord& record, std::string_view key,
                              std::uint64_t token, std::string_view lock_name,
                              UniqueFd* pin) const {
  if (token < record.fence) {
    return StaleTokenError("token " + std::to_string(token) + " is older than token " +
                               std::to_string(record.fence) + " already seen for key '" +
                               std::string(key) + "'",
                           record.fence);
  }
  if (lock_name.empty()) return OkStatus();
  auto pinned = pin_(lock_name, token);
  if (!pinned.ok()) {
    Status s = pinned.status();
    if (s.code() == StatusCode::kStaleToken) s.set_current(record.fence);
    return s;
  }
  *pin = std::move(*pinned);
  return OkStatus();
}

Result<FencedWrite> FileFencedStore::Write(std::string_view key, std::string_view data,
                                           std::uint64_t token, std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/true));
  auto locked = keys_.LockKey(key, /*create=*/true);
  if (!locked.ok()) return locked.status();
  auto record = keys_.Load(locked->get(), key);
  if (!record.ok()) return record.status();
  UniqueFd pin;
  ORDO_RETURN_IF_ERROR(Admit(*record, key, token, lock_name, &pin));
  record->fence = token;
  record->version += 1;
  record->data.assign(data);
  ORDO_RETURN_IF_ERROR(keys_.Replace(key, *record));
  return FencedWrite{record->fence, record->version};
}

Result<FencedValue> FileFencedStore::Read(std::string_view key, std::uint64_t token,
                                          std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateFencedArgs(key, token, lock_name, /*token_required=*/false));
  Result<KeyRecord> record = KeyRecord{};
  if (token == 0) {
    record = keys_.LoadUnlocked(key);
    if (!record.ok()) return record.status();
  } else {
    auto locked = keys_.LockKey(key, /*create=*/true);
    if (!locked.ok()) return locked.status();
    record = keys_.Load(locked->get(), key);
    if (!record.ok()) return record.status();
    UniqueFd pin;
    ORDO_RETURN_IF_ERROR(Admit(*record, key, token, lock_name, &pin));
    if (token > record->fence) {
      record->fence = token;  // the read registers its token, value or not
      ORDO_RETURN_IF_ERROR(keys_.Replace(key, *record));
    }
  }
  if (record->version == 0) return NotFoundError("key '" + std::string(key) + "' has no value");
  return FencedValue{std::move(record->data), record->fence, record->version};
}

Result<Versioned> FileVersionedStore::Get(std::string_view key) {
  ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
  auto record = keys_.LoadUnlocked(key);
  if (!record.ok()) return record.status();
  if (record->version == 0) return NotFoundError("object '" + std::string(key) + "' not found");
  return Versioned{std::move(record->data), record->version};
}

Result<std::uint64_t> FileVersionedStore::CompareAndSwap(std::string_view key,
                                                         std::uint64_t expected_version,
                                                         std::string_view value) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, false, 0, {}));
  return Swap(key, expected_version, value, 0, {});
}

Result<std::uint64_t> FileVersionedStore::CompareAndSwap(std::string_view key,
                                                         std::uint64_t expected_version,
                                                         std::string_view value,
                                                         std::uint64_t token,
                                                         std::string_view lock_name) {
  ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, true, token, lock_name));
  return Swap(key, expected_version, value, token, lock_name);
}

Result<std::uint64_t> FileVersionedStore::Swap(std::string_view key,
                                               std::uint64_t expected_version,
                                               std::string_view value, std::uint64_t token,
                                               std::string_view lock_name) {
  // Only a create needs a file to lock when the key is missing; any other CAS on a missing key
  // fails and must leave nothing behind.
  auto locked = keys_.LockKey(key, /*create=*/expected_version == 0);
  if (!locked.ok()) return locked.status();
  KeyRecord record;
  if (locked->valid()) {
    auto loaded = keys_.Load(locked->get(), key);
    if (!loaded.ok()) return loaded.status();
    record = std::move(*loaded);
  }
  UniqueFd pin;  // strict mode: keeps the token a live holder until the file is replaced
  if (token != 0) {
    if (token < record.fence) return StaleObjectToken(key, token, record.fence);
    if (!lock_name.empty()) {
      auto pinned = pin_(lock_name, token);
      if (!pinned.ok()) {
        Status s = pinned.status();
        if (s.code() == StatusCode::kStaleToken) s.set_current(record.fence);
        return s;
      }
      pin = std::move(*pinned);
    }
  }
  if (record.version != expected_version) {
    return ObjectVersionMismatch(key, record.version, expected_version);
  }
  record.version += 1;
  record.data.assign(value);
  if (token > record.fence) record.fence = token;
  ORDO_RETURN_IF_ERROR(keys_.Replace(key, record));
  return record.version;
}

}  // namespace ordo::local
