// sqlite:// (each strategy) against the same SQL through the raw sqlite3 API.
#include "backends.h"

namespace ordo::bench {
namespace {

class SqliteBench final : public BackendBench {
 public:
  explicit SqliteBench(std::string strategy) : strategy_(std::move(strategy)) {}
  std::string label() const override { return "sqlite:// " + strategy_; }
  std::string scheme() const override { return "sqlite"; }
  std::string url() const override { return url_; }
  std::string Setup(const Config&) override { return "the sqlite baseline is not written yet"; }
  Baseline Measure(const Config&, Scenario, int) override { return {}; }

 private:
  std::string strategy_;
  std::string url_;
};

}  // namespace

std::vector<std::unique_ptr<BackendBench>> SqliteBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  out.push_back(std::make_unique<SqliteBench>("cas"));
  out.push_back(std::make_unique<SqliteBench>("version"));
  return out;
}

}  // namespace ordo::bench
