// inproc:, flock:// and fcntl:// against std::shared_mutex and the raw syscalls.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "backends.h"
#include "ordo/ordo.h"
#include "temp_dir.h"

namespace ordo::bench {
namespace {

// --- inproc: vs std::shared_mutex --------------------------------------------------------------

// One mutex per cache line, so that "distinct names" baselines do not share one.
struct alignas(64) PaddedMutex {
  std::shared_mutex mu;
};

class InprocBench final : public BackendBench {
 public:
  std::string label() const override { return "inproc:"; }
  std::string scheme() const override { return "inproc"; }
  std::string Setup(const Config&) override { return ""; }
  std::string url() const override { return "inproc:"; }

  Baseline Measure(const Config& cfg, Scenario scenario, int clients) override {
    switch (scenario) {
      case Scenario::kPair:
      case Scenario::kContended: {
        const bool one = scenario == Scenario::kContended;
        std::vector<PaddedMutex> mutexes(static_cast<std::size_t>(clients));
        return {"std::shared_mutex lock+unlock",
                RunClosedLoop(
                    cfg, clients,
                    [&](int c, std::string*) {
                      auto& mu = mutexes[one ? 0 : static_cast<std::size_t>(c)].mu;
                      mu.lock();
                      mu.unlock();
                      return true;
                    },
                    /*time_ops=*/false),
                ""};
      }
      case Scenario::kWake: {
        std::shared_mutex mu;
        WakeOps ops{
            [&](std::string*) { mu.lock(); return true; },
            [&](std::string*) { mu.lock(); return true; },
            [&](std::string*) { mu.unlock(); return true; },
            [&](std::string*) { mu.unlock(); return true; }};
        return {"std::shared_mutex blocked lock()", MeasureWake(cfg, ops, block_delay()), ""};
      }
      case Scenario::kFenced: {
        struct Entry {
          std::uint64_t fence = 0;
          std::string data;
        };
        std::mutex mu;
        std::unordered_map<std::string, Entry> map;
        const std::string key = "k";
        const std::string data(64, 'x');
        return {"std::mutex + unordered_map token check",
                RunClosedLoop(
                    cfg, clients,
                    [&](int, std::string*) {
                      std::lock_guard<std::mutex> lock(mu);
                      Entry& e = map[key];
                      if (e.fence > 7) return false;
                      e.fence = 7;
                      e.data = data;
                      return true;
                    },
                    false),
                ""};
      }
      case Scenario::kCas: {
        struct Object {
          std::uint64_t version = 0;
          std::string value;
        };
        std::mutex mu;
        std::unordered_map<std::string, Object> map;
        std::uint64_t expected = 0;
        const std::string value = R"({"state":"running","replicas":3})";
        return {"std::mutex + unordered_map version check",
                RunClosedLoop(
                    cfg, clients,
                    [&](int, std::string*) {
                      std::lock_guard<std::mutex> lock(mu);
                      Object& o = map["k"];
                      if (o.version != expected) return false;
                      o.value = value;
                      expected = ++o.version;
                      return true;
                    },
                    false),
                ""};
      }
    }
    return {};
  }

  std::chrono::microseconds block_delay() const override { return std::chrono::microseconds(200); }
};

// --- flock:// and fcntl:// vs the raw syscalls --------------------------------------------------

enum class Mechanism { kFlock, kFcntl };

bool LockFd(Mechanism m, int fd, bool wait) {
  if (m == Mechanism::kFlock) {
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
      if (errno != EINTR) return false;
    }
    return true;
  }
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

void UnlockFd(Mechanism m, int fd) {
  if (m == Mechanism::kFlock) {
    flock(fd, LOCK_UN);
    return;
  }
  struct flock fl {};
  fl.l_type = F_UNLCK;
  fl.l_whence = SEEK_SET;
  fcntl(fd, F_OFD_SETLK, &fl);
}

class FileLockBench final : public BackendBench {
 public:
  explicit FileLockBench(Mechanism m) : m_(m) {}
  std::string label() const override { return m_ == Mechanism::kFlock ? "flock://" : "fcntl://"; }
  std::string scheme() const override { return m_ == Mechanism::kFlock ? "flock" : "fcntl"; }
  std::string url() const override { return scheme() + "://" + dir_.path(); }

  std::string Setup(const Config&) override {
    // Learn where the backend keeps a name's lock file, so that the baseline locks the same
    // kind of file in the same directory.
    auto locker = Open(url());
    if (!locker.ok()) return "Open: " + locker.status().message();
    const std::string probe = BenchName("probe");
    auto lease = (*locker)->Acquire({.name = probe});
    if (!lease.ok()) return "probe acquire: " + lease.status().message();
    (*locker)->Release(*lease).IgnoreError();
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.path())) {
      const std::string path = e.path().string();
      const auto at = path.find(probe);
      if (e.is_regular_file() && at != std::string::npos) {
        prefix_ = path.substr(0, at);
        suffix_ = path.substr(at + probe.size());
        return "";
      }
    }
    prefix_ = dir_.path() + "/";
    return "";
  }

  std::string FileFor(const std::string& name) const { return prefix_ + name + suffix_; }

  int OpenFile(const std::string& path) const {
    return open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }

  Baseline Measure(const Config& cfg, Scenario scenario, int clients) override {
    const std::string call = m_ == Mechanism::kFlock ? "flock" : "fcntl(F_OFD_SETLK)";
    std::vector<int> fds;
    auto close_all = [&] {
      for (int fd : fds) close(fd);
    };
    switch (scenario) {
      case Scenario::kPair:
      case Scenario::kContended: {
        const bool one = scenario == Scenario::kContended;
        const std::string name = BenchName(one ? "raw-contended" : "raw-pair");
        for (int c = 0; c < clients; ++c) {
          const int fd = OpenFile(FileFor(one ? name : name + "-" + std::to_string(c)));
          if (fd < 0) return {call, Sample::Error(std::strerror(errno)), ""};
          fds.push_back(fd);
        }
        std::atomic<std::uint64_t> token{0};
        Sample s = RunClosedLoop(
            cfg, clients,
            [&](int c, std::string* error) {
              const int fd = fds[static_cast<std::size_t>(c)];
              if (!LockFd(m_, fd, one)) {
                *error = std::strerror(errno);
                return false;
              }
              const std::uint64_t t = token.fetch_add(1, std::memory_order_relaxed) + 1;
              const bool wrote = pwrite(fd, &t, sizeof(t), 0) == sizeof(t);
              UnlockFd(m_, fd);
              return wrote;
            },
            false);
        close_all();
        return {"raw " + call + (one ? " (blocking)" : "") + " + pwrite token, fd opened once", s,
                ""};
      }
      case Scenario::kWake: {
        const std::string path = FileFor(BenchName("raw-wake"));
        const int holder = OpenFile(path);
        const int waiter = OpenFile(path);
        fds = {holder, waiter};
        WakeOps ops{[&](std::string*) { return LockFd(m_, holder, false); },
                    [&](std::string*) { return LockFd(m_, waiter, true); },
                    [&](std::string*) { UnlockFd(m_, waiter); return true; },
                    [&](std::string*) { UnlockFd(m_, holder); return true; }};
        Sample s = MeasureWake(cfg, ops, block_delay());
        close_all();
        return {"raw blocking " + call, s, ""};
      }
      case Scenario::kFenced:
      case Scenario::kCas: {
        // The file stores' design done by hand (local/src/file_store.h): open the key's file,
        // OFD-lock it, read the header, write the new record to a temporary file and rename it
        // over the key. The key must be reopened every time: the rename replaces its inode.
        const std::string dir = dir_.path();
        static int store_call = 0;  // a fresh key per call: each round starts from version 0
        const std::string key = dir + "/" + BenchName((scenario == Scenario::kFenced ? "raw-fenced-" : "raw-cas-") + std::to_string(++store_call));
        const std::string temp = dir + "/.tmp-raw";
        std::string record(32 + 64, 'x');
        std::uint64_t expected = 0;
        Sample s = RunClosedLoop(
            cfg, 1,
            [&](int, std::string* error) {
              const int fd = open(key.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
              if (fd < 0 || !LockFd(Mechanism::kFcntl, fd, true)) {
                *error = std::strerror(errno);
                if (fd >= 0) close(fd);
                return false;
              }
              std::uint64_t header[4] = {0, 0, 0, 0};
              bool ok = pread(fd, header, sizeof(header), 0) >= 0;
              const std::uint64_t current = header[2];
              ok = ok && current == expected;
              if (ok) {
                const std::uint64_t next = expected + 1;
                std::memcpy(record.data() + 16, &next, sizeof(next));
                const int t = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                ok = t >= 0 && pwrite(t, record.data(), record.size(), 0) ==
                                   static_cast<ssize_t>(record.size());
                if (t >= 0) close(t);
                ok = ok && rename(temp.c_str(), key.c_str()) == 0;
                expected = next;
              }
              if (!ok) *error = std::strerror(errno);
              close(fd);
              return ok;
            },
            false);
        return {"raw: OFD-lock key file, pread, write temp file, rename", s, ""};
      }
    }
    return {};
  }

  std::chrono::microseconds block_delay() const override { return std::chrono::microseconds(500); }

 private:
  Mechanism m_;
  testing::TempDir dir_;
  std::string prefix_;
  std::string suffix_;
};

}  // namespace

std::vector<std::unique_ptr<BackendBench>> LocalBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  out.push_back(std::make_unique<InprocBench>());
  out.push_back(std::make_unique<FileLockBench>(Mechanism::kFlock));
  out.push_back(std::make_unique<FileLockBench>(Mechanism::kFcntl));
  return out;
}

}  // namespace ordo::bench
