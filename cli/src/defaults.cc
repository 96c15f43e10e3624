#include "defaults.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace ordo::cli {

std::string DefaultLockName(const std::vector<std::string>& argv) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a 64 offset basis
  auto mix = [&hash](unsigned char byte) {
    hash ^= byte;
    hash *= 1099511628211ull;  // FNV-1a 64 prime
  };
  for (const auto& arg : argv) {
    std::uint64_t length = arg.size();
    for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(length >> (8 * i)));
    for (unsigned char c : arg) mix(c);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "run-";
  for (int shift = 60; shift >= 0; shift -= 4) name.push_back(kHex[(hash >> shift) & 0xf]);
  return name;
}

std::string DefaultLockDir(const char* xdg_runtime_dir, uid_t uid) {
  if (xdg_runtime_dir != nullptr && *xdg_runtime_dir != '\0') {
    return std::string(xdg_runtime_dir) + "/ordo";
  }
  if (uid == 0) return "/run/lock/ordo";
  return "/tmp/ordo-" + std::to_string(uid);
}

std::string DefaultStatePath(const char* xdg_state_home, const char* home, uid_t uid) {
  if (uid == 0) return "/var/lib/ordo/ordo.db";
  if (xdg_state_home != nullptr && *xdg_state_home != '\0') {
    return std::string(xdg_state_home) + "/ordo/ordo.db";
  }
  return std::string(home != nullptr ? home : "") + "/.local/state/ordo/ordo.db";
}

Status EnsurePrivateDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return InvalidArgumentError("cannot create lock directory '" + dir +
                                "': " + std::strerror(errno));
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    return InvalidArgumentError("cannot inspect '" + dir + "': " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return InvalidArgumentError("'" + dir + "' is not a directory (a symlink or a file)");
  }
  if (st.st_uid != geteuid()) {
    return InvalidArgumentError("lock directory '" + dir + "' belongs to uid " +
                                std::to_string(st.st_uid) + ", not to you");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return InvalidArgumentError("lock directory '" + dir +
                                "' is writable by others; chmod 700 it");
  }
  return OkStatus();
}

Status EnsureDirs(const std::string& dir) {
  std::string path;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return InvalidArgumentError("cannot create directory '" + path +
                                  "': " + std::strerror(errno));
    }
  }
  return OkStatus();
}

std::string UrlPath(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) != 0 || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

Result<std::string> DefaultRunBackend() {
  const std::string dir = DefaultLockDir(std::getenv("XDG_RUNTIME_DIR"), geteuid());
  ORDO_RETURN_IF_ERROR(EnsurePrivateDir(dir));
  return "flock://" + UrlPath(dir);
}

Result<std::string> DefaultServeBackend() {
  const std::string path =
      DefaultStatePath(std::getenv("XDG_STATE_HOME"), std::getenv("HOME"), geteuid());
  ORDO_RETURN_IF_ERROR(EnsureDirs(path.substr(0, path.rfind('/'))));
  return "sqlite://" + UrlPath(path);
}

}  // namespace ordo::cli
