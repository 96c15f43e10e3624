// ordo-local-helper: a separate process for the tests of tests/local. One line per event.
//
//   fds                                   print "fd N -> TARGET" for every descriptor above 2
//                                         that was inherited across exec, then "end"
//   open-as URL UID                       drop to uid/gid UID, Open(URL), print "ok" or
//                                         "<code> <message>"
//   range PATH OFFSET LENGTH MODE WAIT_MS RangeLock::Lock; print "locked", "held" or
//                                         "error <status>"; once locked, unlock on a line from
//                                         stdin and print "unlocked" (exit holding it on EOF)
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "ordo/ordo.h"
#include "ordo_local/range_lock.h"

namespace {

int Fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 3;
  const int own = dirfd(dir);
  while (const dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (e->d_name[0] == '.' || fd <= 2 || fd == own) continue;
    char target[4096] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    std::cout << "fd " << fd << " -> " << (n > 0 ? std::string(target, n) : "?") << "\n";
  }
  closedir(dir);
  std::cout << "end" << std::endl;
  return 0;
}

int OpenAs(const std::string& url, long uid) {
  if (setgid(static_cast<gid_t>(uid)) != 0 || setuid(static_cast<uid_t>(uid)) != 0) {
    std::cout << "cannot drop privileges" << std::endl;
    return 3;
  }
  auto locker = ordo::Open(url);
  if (locker.ok()) {
    std::cout << "ok" << std::endl;
  } else {
    std::cout << ordo::StatusCodeName(locker.status().code()) << " "
              << locker.status().message() << std::endl;
  }
  return 0;
}

int Range(const std::string& path, std::uint64_t offset, std::uint64_t length,
          const std::string& mode, long wait_ms) {
  auto lock = ordo::RangeLock::Lock(
      path, offset, length, mode == "shared" ? ordo::LockMode::kShared : ordo::LockMode::kExclusive,
      std::chrono::milliseconds(wait_ms));
  if (!lock.ok()) {
    if (lock.status().code() == ordo::StatusCode::kLockHeld) {
      std::cout << "held" << std::endl;
    } else {
      std::cout << "error " << lock.status().ToString() << std::endl;
    }
    return 0;
  }
  std::cout << "locked" << std::endl;
  std::string line;
  if (!std::getline(std::cin, line)) return 0;
  lock->Unlock();
  std::cout << "unlocked" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "fds" && argc == 2) return Fds();
  if (mode == "open-as" && argc == 4) return OpenAs(argv[2], std::atol(argv[3]));
  if (mode == "range" && argc == 7) {
    return Range(argv[2], std::strtoull(argv[3], nullptr, 10), std::strtoull(argv[4], nullptr, 10),
                 argv[5], std::atol(argv[6]));
  }
  std::fprintf(stderr, "ordo-local-helper: bad arguments\n");
  return 2;
}
