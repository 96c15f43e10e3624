// Which file systems a lock directory of flock:// or fcntl:// may live on.
//
// flock(2) and OFD record locks are only as good as the file system that implements them. On a
// network file system they are emulated, partial or absent: NFSv3 forwards them to a separate
// lock manager that loses them when a client reboots or a network partition heals, NFSv4 turns
// flock(2) into a byte-range lock and silently drops it when the client's lease expires, CIFS/SMB
// maps them to Windows share modes, 9p, FUSE and most cluster file systems keep them on one
// client only. Two machines can then both "hold" a lock, and a lock file's token counter, read
// and written through client caches, can go backwards. So a lock directory there is refused.
//
// Thread-safe; no state.
#ifndef ORDO_LOCAL_FILE_SYSTEM_H_
#define ORDO_LOCAL_FILE_SYSTEM_H_

#include <string>
#include <string_view>

#include "ordo/status.h"

namespace ordo::local {

// The name of the network (or otherwise remote/shared) file system whose statfs f_type is
// `f_type` ("NFS", "CIFS/SMB", "9p", "FUSE", …), or an empty view for a local one.
std::string_view NetworkFileSystemName(long long f_type);

// kInvalidArgument naming the file system and what to use instead when the directory `fd` (shown
// as `path`) is on a network file system; OK otherwise, and OK when fstatfs itself fails (the
// open that follows reports real trouble).
Status CheckLocalFileSystem(int fd, const std::string& path);

}  // namespace ordo::local

#endif  // ORDO_LOCAL_FILE_SYSTEM_H_
