#include "file_system.h"

#include <sys/vfs.h>

#include <cerrno>

namespace ordo::local {
namespace {

struct Known {
  long long f_type;
  std::string_view name;
};

// Magic numbers from <linux/magic.h> and the file systems' own sources (some are not in the
// kernel's header). FUSE covers sshfs, GlusterFS's native client, s3fs, rclone and the like:
// a FUSE daemon may implement locks locally or not at all, and ordo cannot tell which.
constexpr Known kNetworkFileSystems[] = {
    {0x6969, "NFS"},
    {0x517B, "SMB (smbfs)"},
    {0xFF534D42, "CIFS/SMB"},
    {0xFE534D42, "SMB2/SMB3"},
    {0x01021997, "9p (v9fs)"},
    {0x65735546, "FUSE"},
    {0x5346414F, "AFS"},
    {0x6B414653, "AFS (kAFS)"},
    {0x00C36400, "Ceph"},
    {0x0BD00BD0, "Lustre"},
    {0x47504653, "GPFS (IBM Spectrum Scale)"},
    {0x19830326, "BeeGFS"},
    {0x20030528, "OrangeFS/PVFS2"},
    {0x73757245, "Coda"},
    {0x564C, "NCP (NetWare)"},
    {0x786F4256, "VirtualBox shared folder (vboxsf)"},
};

}  // namespace

std::string_view NetworkFileSystemName(long long f_type) {
  // f_type is a signed long in struct statfs: CIFS's 0xFF534D42 arrives sign-extended on some
  // ABIs. Compare the low 32 bits, which is all a magic number has.
  const long long magic = f_type & 0xFFFFFFFFLL;
  for (const Known& k : kNetworkFileSystems) {
    if (k.f_type == magic) return k.name;
  }
  return {};
}

Status CheckLocalFileSystem(int fd, const std::string& path) {
  struct statfs fs{};
  int rc;
  do {
    rc = ::fstatfs(fd, &fs);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return OkStatus();
  const std::string_view name = NetworkFileSystemName(static_cast<long long>(fs.f_type));
  if (name.empty()) return OkStatus();
  return InvalidArgumentError(
      "lock directory '" + path + "' is on a network file system (" + std::string(name) +
      "): flock and fcntl locks there are not reliable across machines and its token counters "
      "can go backwards. Use a directory on a local disk (flock:///local/dir) for the jobs of "
      "one machine, or postgresql://… or http://… (ordo serve) to coordinate several machines");
}

}  // namespace ordo::local
