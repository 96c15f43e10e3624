#include "backend_loader.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "commands.h"
#include "ordo/registry.h"

namespace ordo::cli {
namespace {

using OpenFn = void (*)(const char*, std::size_t, Result<std::unique_ptr<Locker>>*);
using ServeFn = int (*)(const http::ServeOptions*);
using FenceFn = int (*)(const FenceOptions*);

// libordo's soname. The binary looks for it where it was installed with it (ORDO_BIN_TO_LIB,
// relative to the binary's own directory) or, for the binary in the build tree, in the build
// tree (ORDO_BUILD_LIB_DIR), and last where the dynamic loader would. Not through the RUNPATH:
// dlopen searches the RUNPATH of its caller, and under ASan or TSan the caller is the
// sanitizer's interceptor, not this binary.
constexpr char kLibrary[] = "libordo.so.0";
// ordo::Open under a C name (middleware/src/registry.cc), the one entry point needed: every
// backend registers itself with libordo's own registry when the library loads. cli_test
// exercises it through every non-file backend it runs.
constexpr char kOpenSymbol[] = "ordo_open_backend";
constexpr char kServeModule[] = "libordo-serve.so";
constexpr char kServeSymbol[] = "ordo_cli_run_server";
constexpr char kFenceModule[] = "libordo-fence.so";
constexpr char kFenceSymbol[] = "ordo_cli_fence";

// Where to look for `file`, in order (see kLibrary).
std::vector<std::string> Candidates(const char* file) {
  std::vector<std::string> paths;
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    const std::string self(exe, static_cast<std::size_t>(n));
    const std::string dir = self.substr(0, self.rfind('/'));
    paths.push_back(dir + "/" + ORDO_BIN_TO_LIB + "/" + file);
    const std::string build = ORDO_BUILD_LIB_DIR;
    if (self.starts_with(build + "/")) paths.push_back(build + "/" + file);
  }
  paths.emplace_back(file);
  return paths;
}

// dlopen + dlsym; the symbol or nullptr with the reason in *error.
void* Load(const char* library, const char* symbol, std::string* error) {
  void* handle = nullptr;
  std::string tried;
  for (const std::string& path : Candidates(library)) {
    // RTLD_LOCAL: the library keeps its own copy of the middleware (registry, defaults) and
    // binds to it; this binary exports nothing it could interpose.
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) break;
    const char* why = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + (why != nullptr ? why : path.c_str());
  }
  if (handle == nullptr) {
    *error = std::string("cannot load ") + library + " (" + tried + ")";
    return nullptr;
  }
  void* entry = dlsym(handle, symbol);
  if (entry == nullptr) {
    const char* why = dlerror();
    *error = std::string(library) + " has no " + symbol + ": " + (why != nullptr ? why : "?");
  }
  return entry;
}

bool HasScheme(std::string_view url) {
  const auto colon = url.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string scheme(url.substr(0, colon));
  const auto schemes = RegisteredSchemes();
  return std::find(schemes.begin(), schemes.end(), scheme) != schemes.end();
}

}  // namespace

Result<std::unique_ptr<Locker>> OpenBackend(std::string_view url) {
  if (HasScheme(url)) return Open(url);
  static std::once_flag once;
  static OpenFn open = nullptr;
  static std::string error;
  std::call_once(once, [] { open = reinterpret_cast<OpenFn>(Load(kLibrary, kOpenSymbol, &error)); });
  if (open == nullptr) return UnavailableError(error);
  Result<std::unique_ptr<Locker>> out = UnavailableError("libordo.so returned nothing");
  open(url.data(), url.size(), &out);
  return out;
}

// Runs `symbol(options)` from `module`; kExitOrdoError (logged for `command`) when it cannot.
template <typename Fn, typename Options>
int RunModule(const char* module, const char* symbol, const char* command,
              const Options& options) {
  std::string error;
  auto entry = reinterpret_cast<Fn>(Load(module, symbol, &error));
  if (entry == nullptr) {
    spdlog::error("{}: {}", command, error);
    return kExitOrdoError;
  }
  return entry(&options);
}

int RunServerModule(const http::ServeOptions& options) {
  return RunModule<ServeFn>(kServeModule, kServeSymbol, "ordo serve", options);
}

int RunFenceModule(const FenceOptions& options) {
  return RunModule<FenceFn>(kFenceModule, kFenceSymbol, "ordo fence", options);
}

}  // namespace ordo::cli
