#include "defaults.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

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

std::string DefaultLockDir(uid_t uid, std::string_view home) {
  if (uid == 0) return "/var/lib/ordo/locks";
  std::string dir(home);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir == "/") dir.clear();
  return dir + "/.local/state/ordo/locks";
}

Result<std::string> HomeOf(uid_t uid, const char* home_env) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<std::size_t>(size) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  int err;
  while ((err = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (err == 0 && found != nullptr && pw.pw_dir != nullptr && pw.pw_dir[0] == '/') {
    return std::string(pw.pw_dir);
  }
  if (home_env != nullptr && home_env[0] == '/') return std::string(home_env);
  return InvalidArgumentError(
      "no home directory for uid " + std::to_string(uid) +
      " (no entry in the user database and no absolute $HOME) to keep the default lock "
      "directory in; give --backend flock:///some/local/dir");
}

std::vector<std::string> LegacyLockDirs(const char* xdg_runtime_dir, uid_t uid) {
  std::vector<std::string> dirs;
  auto add = [&dirs](std::string dir) {
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(std::move(dir));
  };
  if (xdg_runtime_dir != nullptr && *xdg_runtime_dir != '\0') {
    add(std::string(xdg_runtime_dir) + "/ordo");
  }
  add("/run/user/" + std::to_string(uid) + "/ordo");
  add(uid == 0 ? "/run/lock/ordo" : "/tmp/ordo-" + std::to_string(uid));
  return dirs;
}

std::vector<std::string> LegacyLocksOf(const std::string& name) {
  std::vector<std::string> found;
  const uid_t uid = geteuid();
  for (std::string& dir : LegacyLockDirs(std::getenv("XDG_RUNTIME_DIR"), uid)) {
    struct stat st;
    // The checks ordo 0.1 made before using the directory: a real directory of this user's
    // that nobody else can write to. Anything else was never one of its lock directories.
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid ||
        (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      continue;
    }
    const std::string file = dir + "/" + name;
    if (lstat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode)) found.push_back(std::move(dir));
  }
  return found;
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

Result<std::string> DefaultRunDir() {
  const uid_t uid = geteuid();
  std::string home;
  if (uid != 0) {  // root's directory is fixed
    auto found = HomeOf(uid, std::getenv("HOME"));
    if (!found.ok()) return found.status();
    home = std::move(*found);
  }
  const std::string dir = DefaultLockDir(uid, home);
  Status made = EnsureDirs(dir.substr(0, dir.rfind('/')));
  if (made.ok()) made = EnsurePrivateDir(dir);
  if (!made.ok()) {
    return Status(made.code(), "default lock directory " + dir + ": " + made.message() +
                                   " (or give --backend flock:///some/local/dir)");
  }
  return dir;
}

Result<std::string> DefaultRunBackend() {
  auto dir = DefaultRunDir();
  if (!dir.ok()) return dir.status();
  return "flock://" + UrlPath(*dir);
}

Result<std::string> DefaultServeBackend() {
  const std::string path =
      DefaultStatePath(std::getenv("XDG_STATE_HOME"), std::getenv("HOME"), geteuid());
  ORDO_RETURN_IF_ERROR(EnsureDirs(path.substr(0, path.rfind('/'))));
  return "sqlite://" + UrlPath(path);
}

}  // namespace ordo::cli
