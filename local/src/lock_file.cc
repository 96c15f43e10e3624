#include "lock_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace ordo::local {
namespace {

// A holder record, inside its 512-byte slot:
//   [0, 8)    magic "ordohold" (all zero: a free slot)
//   [8, 16)   token
//   [16]      mode: 0 exclusive, 1 shared
//   [20, 24)  limit (0, as written before semaphores: 1)
//   [24, 32)  expires_at, milliseconds since the Unix epoch (signed)
//   [32, 34)  owner length
//   [34, …)   owner (at most kMaxOwnerLength bytes)
constexpr char kMagic[8] = {'o', 'r', 'd', 'o', 'h', 'o', 'l', 'd'};
constexpr std::size_t kOwnerOffset = 34;
static_assert(kOwnerOffset + kMaxOwnerLength <= static_cast<std::size_t>(kSlotSize));

// More live holders than this on one name is a runaway, not a use case.
constexpr std::uint32_t kMaxSlots = 1u << 16;

off_t SlotOffset(std::uint32_t slot) { return kSlotBase + kSlotSize * static_cast<off_t>(slot); }

// "<verb> of lock file '<name>'", joined only for an error message.
What About(std::string_view verb, std::string_view name) {
  return What(verb, " of lock file '", name, "'");
}

// Encodes `r` into a whole slot, all of which is written: a reader skips a slot that the file
// does not hold whole (the last one, in a file that ends early).
void Encode(const HolderRecord& r, unsigned char (&buf)[kSlotSize]) {
  std::memset(buf, 0, kSlotSize);
  std::memcpy(buf, kMagic, sizeof(kMagic));
  EncodeU64(r.token, buf + 8);
  buf[16] = r.mode == LockMode::kShared ? 1 : 0;
  for (int i = 0; i < 4; ++i) buf[20 + i] = static_cast<unsigned char>(r.limit >> (8 * i));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      r.expires_at.time_since_epoch())
                      .count();
  EncodeU64(static_cast<std::uint64_t>(ms), buf + 24);
  const std::size_t n = std::min(r.owner.size(), kMaxOwnerLength);
  buf[32] = static_cast<unsigned char>(n & 0xff);
  buf[33] = static_cast<unsigned char>(n >> 8);
  std::memcpy(buf + kOwnerOffset, r.owner.data(), n);
}

bool Decode(const unsigned char* p, HolderRecord* r) {
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) return false;
  r->token = DecodeU64(p + 8);
  r->mode = p[16] == 1 ? LockMode::kShared : LockMode::kExclusive;
  r->limit = 0;
  for (int i = 0; i < 4; ++i) r->limit |= static_cast<std::uint32_t>(p[20 + i]) << (8 * i);
  if (r->limit == 0) r->limit = 1;
  const auto ms = static_cast<std::int64_t>(DecodeU64(p + 24));
  r->expires_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
  const std::size_t n = std::min<std::size_t>(p[32] | (p[33] << 8), kMaxOwnerLength);
  r->owner.assign(reinterpret_cast<const char*>(p + kOwnerOffset), n);
  return r->token != 0;
}

// The token after the counter's value. REQUIRES: the guard held exclusively.
Result<std::uint64_t> NextToken(int fd, std::string_view name) {
  auto last = ReadCounter(fd, name);
  if (!last.ok()) return last.status();
  if (*last == std::numeric_limits<std::uint64_t>::max()) {
    return InternalError("the token counter of lock '" + std::string(name) + "' is exhausted");
  }
  return *last + 1;
}

Status SyncIf(bool durable, int fd, std::string_view name) {
  if (durable && ::fdatasync(fd) != 0) {
    const int err = errno;
    return FromErrno(err, About("fdatasync", name).str());
  }
  return OkStatus();
}

}  // namespace

Result<std::uint64_t> ReadCounter(int fd, std::string_view name) {
  unsigned char buf[8] = {};
  std::size_t got = 0;
  ORDO_RETURN_IF_ERROR(ReadAt(fd, buf, sizeof(buf), kGuardStart, &got, About("read", name)));
  // A file shorter than the counter was created by an acquisition that never issued a token.
  return got == sizeof(buf) ? DecodeU64(buf) : 0;
}

Result<std::uint64_t> IssueToken(int fd, std::string_view name, bool durable) {
  auto token = NextToken(fd, name);
  if (!token.ok()) return token;
  unsigned char buf[8];
  EncodeU64(*token, buf);
  // One 8-byte pwrite lands in the page cache whole or not at all, so a holder killed here
  // leaves the old or the new counter, never a torn one; the token is written before any lease
  // carries it, so a crash can burn a token but never reissue one.
  ORDO_RETURN_IF_ERROR(WriteAt(fd, buf, sizeof(buf), kGuardStart, About("write", name)));
  ORDO_RETURN_IF_ERROR(SyncIf(durable, fd, name));
  return token;
}

Result<std::uint64_t> IssueTokenToSlotZero(int fd, std::string_view name, bool durable,
                                           HolderRecord* record) {
  auto token = NextToken(fd, name);
  if (!token.ok()) return token;
  record->token = *token;
  unsigned char counter[8];
  EncodeU64(*token, counter);
  static const unsigned char kZeros[kSlotBase - kGuardLength] = {};
  unsigned char slot[kSlotSize];
  Encode(*record, slot);
  // The kernel copies a write page by page, in order, and a fatal signal can stop it only
  // between pages: the 8 counter bytes land whole, and before the record (as with IssueToken's
  // own write, then WriteSlot's). Every 0 written over [8, 4096) was 0 already.
  iovec parts[3] = {{counter, sizeof(counter)},
                    {const_cast<unsigned char*>(kZeros), sizeof(kZeros)},
                    {slot, sizeof(slot)}};
  ORDO_RETURN_IF_ERROR(WriteVAt(fd, parts, 3, kGuardStart, About("write", name)));
  ORDO_RETURN_IF_ERROR(SyncIf(durable, fd, name));
  return token;
}

Result<std::uint32_t> ClaimSlot(int fd, std::string_view name, const HolderRecord& record) {
  for (std::uint32_t slot = 0; slot < kMaxSlots; ++slot) {
    const int err = OfdLock(fd, F_WRLCK, SlotOffset(slot), 1, /*block=*/false);
    if (err == EAGAIN || err == EACCES) continue;  // a live holder's slot
    if (err != 0) return FromErrno(err, About("lock a holder slot", name).str());
    Status written = WriteSlot(fd, name, slot, record);
    if (!written.ok()) {
      OfdLock(fd, F_UNLCK, SlotOffset(slot), 1, false);
      return written;
    }
    return slot;
  }
  return UnavailableError("lock '" + std::string(name) + "' has more than " +
                          std::to_string(kMaxSlots) + " live holders");
}

Status WriteSlot(int fd, std::string_view name, std::uint32_t slot, const HolderRecord& record) {
  unsigned char buf[kSlotSize];
  Encode(record, buf);
  return WriteAt(fd, buf, sizeof(buf), SlotOffset(slot), About("write a holder record", name));
}

Result<std::vector<HolderRecord>> LiveHolders(int fd, std::string_view name) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    return FromErrno(err, About("stat", name).str());
  }
  std::vector<HolderRecord> out;
  if (st.st_size <= kSlotBase) return out;
  const auto slots = static_cast<std::uint32_t>(
      std::min<off_t>((st.st_size - kSlotBase + kSlotSize - 1) / kSlotSize, kMaxSlots));
  std::vector<unsigned char> area(static_cast<std::size_t>(slots) * kSlotSize);
  std::size_t got = 0;
  ORDO_RETURN_IF_ERROR(ReadAt(fd, area.data(), area.size(), kSlotBase, &got,
                              About("read holder records", name)));
  for (std::uint32_t slot = 0; slot < slots; ++slot) {
    const std::size_t at = static_cast<std::size_t>(slot) * kSlotSize;
    if (at + kSlotSize > got) break;
    HolderRecord r;
    if (!Decode(area.data() + at, &r)) continue;
    r.slot = slot;
    auto live = OfdRangeHeldByOther(fd, SlotOffset(slot), 1, About("probe a holder", name));
    if (!live.ok()) return live.status();
    if (*live) out.push_back(std::move(r));  // else: left behind by a holder that died
  }
  std::sort(out.begin(), out.end(),
            [](const HolderRecord& a, const HolderRecord& b) { return a.token < b.token; });
  return out;
}

}  // namespace ordo::local
