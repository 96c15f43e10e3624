// RangeLock: OFD record locks on byte ranges of one shared file (see ordo_local/range_lock.h).
#include "ordo_local/range_lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <utility>

#include "file_util.h"

namespace ordo {

using local::UniqueFd;

Result<RangeLock> RangeLock::Lock(std::string_view path, std::uint64_t offset,
                                  std::uint64_t length, LockMode mode,
                                  std::chrono::milliseconds wait) {
  constexpr auto kMaxOff = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
  if (path.empty()) return InvalidArgumentError("range lock: the file path is empty");
  if (path.find('\0') != std::string_view::npos) {
    return InvalidArgumentError("range lock: the file path contains a NUL byte");
  }
  if (offset > kMaxOff || length > kMaxOff - offset) {
    return InvalidArgumentError("range lock: range [" + std::to_string(offset) + ", +" +
                                std::to_string(length) + ") goes beyond 2^63 bytes");
  }
  if (wait.count() < 0 || wait > kMaxWait) {
    return InvalidArgumentError("range lock: wait " + std::to_string(wait.count()) +
                                "ms is out of range: it must be 0 to 24h");
  }
  const std::string file(path);
  // Shared locks need read access, exclusive ones write access (fcntl's rule); O_NONBLOCK keeps
  // a FIFO at the path from hanging the open (refused below).
  const int flags = (mode == LockMode::kShared ? O_RDONLY : O_RDWR) | O_CREAT | O_CLOEXEC |
                    O_NONBLOCK;
  int raw;
  do {
    raw = ::open(file.c_str(), flags, 0600);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) {
    Status s = local::FromErrno(errno, "range lock: open '" + file + "'");
    // A missing directory is a bad path here, not a missing lock.
    return s.code() == StatusCode::kNotFound ? InvalidArgumentError(s.message()) : s;
  }
  UniqueFd fd(raw);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return local::FromErrno(errno, "range lock: stat '" + file + "'");
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgumentError("range lock: '" + file + "' is not a regular file");
  }
  const short type = mode == LockMode::kShared ? F_RDLCK : F_WRLCK;
  const auto start = static_cast<off_t>(offset);
  const auto len = static_cast<off_t>(length);
  auto got = local::LockBefore(
      [&](bool block) { return local::OfdLock(fd.get(), type, start, len, block); },
      local::SteadyClock::now() + wait, "range lock on '" + file + "'");
  if (!got.ok()) return got.status();
  if (!*got) {
    return LockHeldError("range [" + std::to_string(offset) + ", +" + std::to_string(length) +
                         ") of '" + file + "' is locked by another open file description");
  }
  return RangeLock(fd.Release(), offset, length, mode);
}

RangeLock::RangeLock(RangeLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      offset_(other.offset_),
      length_(other.length_),
      mode_(other.mode_) {}

RangeLock& RangeLock::operator=(RangeLock&& other) noexcept {
  if (this != &other) {
    Unlock();
    fd_ = std::exchange(other.fd_, -1);
    offset_ = other.offset_;
    length_ = other.length_;
    mode_ = other.mode_;
  }
  return *this;
}

RangeLock::~RangeLock() { Unlock(); }

void RangeLock::Unlock() {
  if (fd_ < 0) return;
  // Explicit unlock first: a forked child may share this open file description.
  local::OfdLock(fd_, F_UNLCK, 0, 0, /*block=*/false);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace ordo
