#include "test_support.h"

#include <unistd.h>

#include <atomic>
#include <random>

namespace ordo::testing {

std::string ProcessTempDir() {
  // Destroyed at exit of this process; forked children leave through exec or _exit.
  static TempDir dir;
  return dir.path();
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const unsigned random = std::random_device{}();
  return prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(++counter) + "-" +
         std::to_string(random % 100000);
}

}  // namespace ordo::testing
