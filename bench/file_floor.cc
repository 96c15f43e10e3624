// ordo-file-floor [DIR] — the system calls of one uncontended flock:// and fcntl:// pair
// (acquire with a reused descriptor, then release; see local/src/lock_file.h), replayed with no
// user-space work at all, against the raw lock+pwrite+unlock baseline of ordo-bench on the same
// file: the ratio a pair could reach if ordo's own instructions cost nothing (bench/RESULTS.md,
// "the file backends' floor"). Prints the best of 15 rounds of each loop.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace {

int Ofd(int fd, short type, off_t start, off_t length) {
  struct flock fl{};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = length;
  return fcntl(fd, F_OFD_SETLK, &fl);
}

// Nanoseconds per iteration of `body`, the best of 15 rounds.
template <typename F>
double Best(F body) {
  constexpr int kPairs = 100'000;
  double best = 1e18;
  for (int round = 0; round < 15; ++round) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kPairs; ++i) body();
    const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count() / kPairs);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = std::string(argc > 1 ? argv[1] : "/tmp") + "/ordo-file-floor.lock";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    return 1;
  }
  static unsigned char record[512];
  static unsigned char zeros[4096 - 8];
  std::uint64_t counter = 0;
  struct stat st{};
  auto write_both = [&] {
    iovec parts[3] = {{&counter, 8}, {zeros, sizeof(zeros)}, {record, sizeof(record)}};
    return pwritev(fd, parts, 3, 0);
  };
  const double raw_flock = Best([&] {
    flock(fd, LOCK_EX | LOCK_NB);
    ++counter;
    (void)!pwrite(fd, &counter, 8, 0);
    flock(fd, LOCK_UN);
  });
  const double raw_fcntl = Best([&] {
    Ofd(fd, F_WRLCK, 0, 0);
    ++counter;
    (void)!pwrite(fd, &counter, 8, 0);
    Ofd(fd, F_UNLCK, 0, 0);
  });
  const double ordo_fcntl = Best([&] {
    fstat(fd, &st);
    Ofd(fd, F_WRLCK, 0, 4097);
    (void)!pread(fd, &counter, 8, 0);
    ++counter;
    write_both();
    Ofd(fd, F_UNLCK, 0, 8);
    Ofd(fd, F_WRLCK, 0, 8);
    Ofd(fd, F_UNLCK, 0, 0);
  });
  const double ordo_flock = Best([&] {
    fstat(fd, &st);
    flock(fd, LOCK_EX | LOCK_NB);
    Ofd(fd, F_WRLCK, 0, 4097);
    (void)!pread(fd, &counter, 8, 0);
    ++counter;
    write_both();
    Ofd(fd, F_UNLCK, 0, 4096);
    Ofd(fd, F_WRLCK, 0, 8);
    flock(fd, LOCK_UN);
    Ofd(fd, F_UNLCK, 0, 0);
  });
  const double token_only = Best([&] {
    Ofd(fd, F_WRLCK, 0, 0);
    (void)!pread(fd, &counter, 8, 0);
    ++counter;
    (void)!pwrite(fd, &counter, 8, 0);
    Ofd(fd, F_UNLCK, 0, 0);
  });
  std::printf("raw flock+pwrite+unlock        %6.0f ns\n", raw_flock);
  std::printf("raw fcntl+pwrite+unlock        %6.0f ns\n", raw_fcntl);
  std::printf("flock:// pair's 9 calls        %6.0f ns  ratio %.2f\n", ordo_flock,
              raw_flock / ordo_flock);
  std::printf("fcntl:// pair's 7 calls        %6.0f ns  ratio %.2f\n", ordo_fcntl,
              raw_fcntl / ordo_fcntl);
  std::printf("fcntl lock+pread+pwrite+unlock %6.0f ns  ratio %.2f\n", token_only,
              raw_fcntl / token_only);
  close(fd);
  unlink(path.c_str());
  return 0;
}
