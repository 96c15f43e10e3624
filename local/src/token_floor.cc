#include "token_floor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_util.h"
#include "lock_file.h"
#include "ordo/names.h"

namespace ordo::local {

Status RaiseTokenFloor(const std::string& dir, const std::string& name, std::uint64_t floor) {
  ORDO_RETURN_IF_ERROR(ValidateName(name));
  auto dirfd = OpenLockDirectory(dir);
  if (!dirfd.ok()) return dirfd.status();
  const std::string shown = dir + "/" + name;
  const int fd = OpenAt(dirfd->get(), name, O_RDWR | O_CREAT | O_NONBLOCK);
  if (fd < 0) return FromErrno(-fd, "open lock file '" + shown + "'");
  UniqueFd file(fd);
  struct stat st{};
  if (::fstat(file.get(), &st) != 0) return FromErrno(errno, "stat lock file '" + shown + "'");
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgumentError("lock file '" + shown + "' is not a regular file");
  }
  // Closing `file` drops the guard (it is an OFD lock of this descriptor's description).
  ORDO_RETURN_IF_ERROR(LockShort(file.get(), F_WRLCK, kGuardStart, kGuardLength,
                                 "guard of lock file '" + shown + "'"));
  auto last = ReadCounter(file.get(), name);
  if (!last.ok()) return last.status();
  if (*last >= floor) return OkStatus();
  unsigned char buf[8];
  EncodeU64(floor, buf);
  ORDO_RETURN_IF_ERROR(WriteAt(file.get(), buf, sizeof(buf), kGuardStart,
                               "write the token counter of '" + shown + "'"));
  if (::fdatasync(file.get()) != 0) return FromErrno(errno, "fdatasync '" + shown + "'");
  if (::fsync(dirfd->get()) != 0) return FromErrno(errno, "fsync lock directory '" + dir + "'");
  return OkStatus();
}

}  // namespace ordo::local
