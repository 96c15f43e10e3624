// Files for the throwaway-cluster harnesses, the tests, ordo-bench and ordo-torture: temporary
// directories, whole-file reads, log tails, shell quoting.
//
// Thread safety: the free functions may be called from any thread; a TempDir is owned by one.
#ifndef ORDO_TOOLS_HARNESS_TEMP_DIR_H_
#define ORDO_TOOLS_HARNESS_TEMP_DIR_H_

#include <cstddef>
#include <string>

namespace ordo::testing {

// A fresh directory under $TMPDIR, removed (recursively) by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The whole file; empty when it cannot be read.
std::string ReadFile(const std::string& path);
// The last `bytes` of `text` (for server logs in error messages), "…"-prefixed when cut.
std::string Tail(const std::string& text, std::size_t bytes = 3000);
// `s` single-quoted for /bin/sh.
std::string ShellQuote(const std::string& s);

}  // namespace ordo::testing

#endif  // ORDO_TOOLS_HARNESS_TEMP_DIR_H_
