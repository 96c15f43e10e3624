// ordo-pair-loop URL N — N uncontended acquire+release pairs on one name through the public
// API, and nothing else: the program to count instructions of the hot path with
//   valgrind --tool=callgrind ordo-pair-loop inproc: 100000
// minus the same run with N = 0 (start-up and Open), divided by N (see bench/RESULTS.md).
// Exits 1 with the status on the first failure.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ordo/ordo.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: ordo-pair-loop URL N\n");
    return 2;
  }
  const long n = std::atol(argv[2]);
  auto locker = ordo::Open(argv[1]);
  if (!locker.ok()) {
    std::fprintf(stderr, "%s\n", locker.status().ToString().c_str());
    return 1;
  }
  // The length of ordo-bench's names ("bench-<pid>-<tag>"), so the string work is the same.
  const std::string name = "bench-12345-pair-0";
  for (long i = 0; i < n; ++i) {
    auto lease = (*locker)->Acquire({.name = name, .ttl = std::chrono::milliseconds(30'000)});
    if (!lease.ok()) {
      std::fprintf(stderr, "acquire: %s\n", lease.status().ToString().c_str());
      return 1;
    }
    const ordo::Status released = (*locker)->Release(*lease);
    if (!released.ok()) {
      std::fprintf(stderr, "release: %s\n", released.ToString().c_str());
      return 1;
    }
  }
  return 0;
}
