// ordo-bench: every backend against its raw mechanism, in the same run, as one Markdown table.
//
//   ordo-bench [--quick] [--smoke] [--only SUBSTRING] [--ordo PATH]
//
// --quick finishes in under a minute; --smoke is a few seconds and exits 1 unless every row
// that can run produced a number (the ctest entry). Servers (PostgreSQL, Redis, etcd,
// `ordo serve`) are started on loopback and stopped at the end, also on error and on Ctrl-C.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>

#include "backends.h"
#include "bench.h"
#include "procs.h"

namespace ordo::bench {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: ordo-bench [--quick] [--smoke] [--only SUBSTRING] [--ordo PATH]\n"
               "  --quick   short samples (under a minute)\n"
               "  --smoke   tiny samples; exit 1 unless every available row has a number\n"
               "  --only    run only rows whose backend label contains SUBSTRING\n"
               "  --ordo    the ordo CLI (default: ../cli/ordo next to this binary, then PATH)\n");
  return 2;
}

bool Wanted(const Config& cfg, const std::string& label) {
  return cfg.only.empty() || label.find(cfg.only) != std::string::npos;
}

// Many waiters and servers need more descriptors than the default soft limit of 1024.
void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int Main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--smoke") {
      cfg.smoke = true;
    } else if (a == "--only" && i + 1 < argc) {
      cfg.only = argv[++i];
    } else if (a == "--ordo" && i + 1 < argc) {
      cfg.ordo_binary = argv[++i];
    } else {
      return Usage();
    }
  }
  if (cfg.quick) {
    cfg.seconds = 0.25;
    cfg.warmup = 0.05;
    cfg.wake_iterations = 40;
    cfg.spawn_runs = 40;
    cfg.memory_leases = 20'000;
    cfg.memory_waiters = 200;
    cfg.scale_rows = 100'000;
  }
  if (cfg.smoke) {
    cfg.seconds = 0.03;
    cfg.warmup = 0.01;
    cfg.wake_iterations = 3;
    cfg.spawn_runs = 3;
    cfg.memory_leases = 200;
    cfg.memory_waiters = 10;
    cfg.scale_rows = 5'000;
  }
  cfg.self_dir = std::filesystem::canonical("/proc/self/exe").parent_path().string();
#ifdef ORDO_BENCH_ORDO_BINARY
  if (cfg.ordo_binary.empty() && access(ORDO_BENCH_ORDO_BINARY, X_OK) == 0) {
    cfg.ordo_binary = ORDO_BENCH_ORDO_BINARY;
  }
#endif
  if (cfg.ordo_binary.empty()) {
    const std::string sibling = cfg.self_dir + "/../cli/ordo";
    cfg.ordo_binary = access(sibling.c_str(), X_OK) == 0
                          ? std::filesystem::canonical(sibling).string()
                          : FindProgram("ordo");
  }
  InstallCleanupHandlers();
  RaiseFileLimit();

  Table table;
  const double start = NowSeconds();
  std::vector<std::unique_ptr<BackendBench>> backends;
  for (auto* group : {&LocalBackends, &SqliteBackends, &PostgresBackends, &HttpBackends,
                      &EtcdBackends}) {
    for (auto& b : group()) backends.push_back(std::move(b));
  }
  for (auto& b : backends) {
    if (!Wanted(cfg, b->label())) continue;
    std::fprintf(stderr, "%s\n", b->label().c_str());
    RunBackend(cfg, *b, table);
    b.reset();  // stop its servers before the next backend runs
  }
  if (Wanted(cfg, "scale postgresql://")) RunScaleRow(cfg, table);
  if (Wanted(cfg, "memory ordo serve")) RunMemoryRow(cfg, table);
  if (Wanted(cfg, "http:// events ring on vs off")) RunRingRows(cfg, table);
  if (Wanted(cfg, "parked waiters ordo serve")) RunParkedRow(cfg, table);
  if (Wanted(cfg, "ordo run")) RunCliRows(cfg, table);
  if (Wanted(cfg, "ordo run -- true (etcd://)")) RunEtcdCliRow(cfg, table);
  if (Wanted(cfg, "your own PostgreSQL table")) RunFenceRows(cfg, table);
  if (Wanted(cfg, "semaphore")) RunSemaphoreRows(cfg, table);
  if (Wanted(cfg, "semaphore")) RunSemaphoreDbRows(cfg, table);
  if (Wanted(cfg, "election")) RunElectionRows(cfg, table);
  RunReplicaRows(cfg, table);  // checks --only against each of its labels

  const char* mode = cfg.smoke ? "--smoke" : cfg.quick ? "--quick" : "full";
  char header[256];
  std::snprintf(header, sizeof(header), "ordo-bench (%s run, %ld cores, %.0f s)", mode,
                sysconf(_SC_NPROCESSORS_ONLN), NowSeconds() - start);
  std::printf("%s\n\n%s", header, table.Markdown().c_str());

  int failed = 0;
  for (const Row& row : table.rows()) {
    if (row.ordo.failed || row.baseline.failed) ++failed;
  }
  if (failed > 0) std::fprintf(stderr, "ordo-bench: %d row(s) failed\n", failed);
  return cfg.smoke && failed > 0 ? 1 : 0;
}

}  // namespace
}  // namespace ordo::bench

int main(int argc, char** argv) {
  try {
    return ordo::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-bench: %s\n", e.what());
    return 1;
  }
}
