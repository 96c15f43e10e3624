// The statfs classification that keeps flock:// and fcntl:// lock directories off network file
// systems (NFS, SMB, 9p, FUSE, …): no such mount is available to a test, so the f_type table is
// checked directly, plus the pass-through of a local directory.
#include "file_system.h"

#include <fcntl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <string_view>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ordo/ordo.h"
#include "test_support.h"

namespace ordo::local {
namespace {

using ::testing::HasSubstr;

TEST(FileSystemTest, NetworkFileSystemsAreNamed) {
  const std::pair<long long, std::string_view> kCases[] = {
      {0x6969, "NFS"},          {0xFF534D42, "CIFS/SMB"},   {0xFE534D42, "SMB2/SMB3"},
      {0x517B, "SMB (smbfs)"},  {0x01021997, "9p (v9fs)"},  {0x65735546, "FUSE"},
      {0x5346414F, "AFS"},      {0x6B414653, "AFS (kAFS)"}, {0x00C36400, "Ceph"},
      {0x0BD00BD0, "Lustre"},   {0x19830326, "BeeGFS"},
      {0x47504653, "GPFS (IBM Spectrum Scale)"},
  };
  for (const auto& [f_type, name] : kCases) {
    EXPECT_EQ(NetworkFileSystemName(f_type), name) << std::hex << f_type;
  }
}

TEST(FileSystemTest, SignExtendedMagicIsStillRecognised) {
  // struct statfs's f_type is a signed long: CIFS's magic can arrive as a negative number.
  EXPECT_EQ(NetworkFileSystemName(static_cast<long long>(static_cast<std::int32_t>(0xFF534D42))),
            "CIFS/SMB");
}

TEST(FileSystemTest, LocalFileSystemsPass) {
  for (long long local : {0xEF53LL /* ext2/3/4 */, 0x58465342LL /* xfs */,
                          0x9123683ELL /* btrfs */, 0x01021994LL /* tmpfs */,
                          0x794C7630LL /* overlayfs */, 0x2FC12FC1LL /* zfs */,
                          0xF2F52010LL /* f2fs */, 0x858458F6LL /* ramfs */}) {
    EXPECT_EQ(NetworkFileSystemName(local), "") << std::hex << local;
  }
}

TEST(FileSystemTest, ALocalDirectoryIsAcceptedAndTheBackendOpensIt) {
  ordo::testing::TempDir tmp;
  const int fd = ::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct statfs fs{};
  ASSERT_EQ(::fstatfs(fd, &fs), 0);
  const bool network = !NetworkFileSystemName(static_cast<long long>(fs.f_type)).empty();
  const Status checked = CheckLocalFileSystem(fd, tmp.path());
  ::close(fd);
  if (network) {
    // The test machine's temporary directory is itself remote: then the refusal is what we see.
    EXPECT_EQ(checked.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(checked.message(), HasSubstr("network file system"));
    GTEST_SKIP() << tmp.path() << " is on a network file system";
  }
  EXPECT_TRUE(checked.ok()) << checked.ToString();
  for (const char* scheme : {"flock://", "fcntl://"}) {
    auto opened = Open(scheme + tmp.path());
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  }
}

}  // namespace
}  // namespace ordo::local
