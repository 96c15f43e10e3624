// postgresql:// (each strategy) against pgbench running the same statements, same client count,
// same throwaway cluster; and the scale row.
#include <cstdio>

#include "backends.h"

namespace ordo::bench {
namespace {

class PostgresBench final : public BackendBench {
 public:
  explicit PostgresBench(std::string strategy) : strategy_(std::move(strategy)) {}
  std::string label() const override { return "postgresql:// " + strategy_; }
  std::string scheme() const override { return "postgresql"; }
  std::string url() const override { return url_; }
  std::string Setup(const Config&) override { return "the pgbench baseline is not written yet"; }
  Baseline Measure(const Config&, Scenario, int) override { return {}; }

 private:
  std::string strategy_;
  std::string url_;
};

}  // namespace

std::vector<std::unique_ptr<BackendBench>> PostgresBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  for (const char* s : {"for-update", "cas", "version"}) out.push_back(std::make_unique<PostgresBench>(s));
  return out;
}

void RunScaleRow(const Config& cfg, Table& table) {
  std::fprintf(stderr, "scale\n");
  Row row{.backend = "scale: postgresql:// cas",
          .scenario = "acquire latency, " + std::to_string(cfg.scale_rows) + " lock rows vs 1,000",
          .clients = 1,
          .kind = RowKind::kLatency,
          .baseline_name = "the same acquire with 1,000 lock rows"};
  row.ordo = Sample::NotAvailable("n/a (backend not built)");
  row.baseline = Sample::NotAvailable("—");
  table.Add(std::move(row));
}

}  // namespace ordo::bench
