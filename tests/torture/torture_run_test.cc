// The short torture runs CI does: every backend in its safe modes (no violation allowed) and,
// where a lock can be lost while its holder lives, in the control modes (violations required —
// otherwise the test could not have caught one). Each case is one real ordo-torture process
// with real workers, a nemesis and, for postgresql/http, a real PostgreSQL and `ordo serve`; it
// prints one report line per (backend, mode) run.
//
// ORDO_TORTURE_DURATION (default 3s) sets each run's length.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include "test_support.h"

namespace {

struct RunCase {
  std::string name;     // gtest name
  std::string backends;  // ordo-torture --backend (comma-separated)
  std::vector<std::string> modes;
  bool restarts = false;  // the nemesis restarts a database or server
  std::string workload = "lock";
};

std::string Duration() {
  const char* d = std::getenv("ORDO_TORTURE_DURATION");
  return d != nullptr && *d != '\0' ? d : "3s";
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

class TortureRun : public ::testing::TestWithParam<RunCase> {};

TEST_P(TortureRun, EveryRunReportsWhatItsModeDemands) {
  const RunCase& c = GetParam();
  const std::size_t backends = std::count(c.backends.begin(), c.backends.end(), ',') + 1;
  ordo::testing::Child torture({ORDO_TORTURE, "--backend", c.backends, "--workload", c.workload,
                                "--mode", Join(c.modes), "--duration", Duration()});
  const std::regex line(
      "torture backend=(\\S+) mode=(\\S+) ops=(\\d+) acked=(\\d+) refused=(\\d+) "
      "pauses=(\\d+) kills=(\\d+) restarts=(\\d+) violations=(\\d+)");
  std::size_t runs = 0;
  for (std::string report; !(report = torture.ReadLine(std::chrono::seconds(120))).empty();) {
    std::cout << report << std::endl;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(report, m, line)) << "not a report line: '" << report << "'";
    SCOPED_TRACE(report);
    // Runs come in order: each backend in each mode.
    ASSERT_LT(runs, backends * c.modes.size());
    const std::string& mode = c.modes[runs % c.modes.size()];
    ++runs;
    EXPECT_EQ(m[2].str(), mode);
    const auto n = [&](int i) { return std::stoull(m[i].str()); };
    EXPECT_GT(n(4), 0u) << "no acknowledged write: nothing was tested";
    EXPECT_GT(n(6), 0u) << "the nemesis paused nobody";
    EXPECT_GT(n(7), 0u) << "the nemesis killed nobody";
    if (c.restarts) {
      EXPECT_GT(n(8), 0u) << "the nemesis restarted nothing";
    }
    if (mode.starts_with("control-")) {
      EXPECT_GT(n(9), 0u) << "a control run found no violation";
    } else {
      EXPECT_EQ(n(9), 0u) << "violations in a safe mode (ordo-torture kept the history)";
    }
  }
  EXPECT_EQ(runs, backends * c.modes.size()) << "ordo-torture stopped early";
  const int status = torture.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

const std::vector<std::string> kSafe = {"fenced-reads", "strict"};
const std::vector<std::string> kAll = {"fenced-reads", "strict", "control-unfenced-writes",
                                       "control-unfenced-reads"};

std::string CaseName(const ::testing::TestParamInfo<RunCase>& info) { return info.param.name; }

// flock:// locks are never lost while their holder lives (no TTL; a stopped process keeps its
// descriptor), so there is nothing for fencing to catch and a control run cannot fail there:
// only the safe modes run. The same holds for postgresql's for-update between database
// restarts, which are too rare in a short run to make its control runs reliable.
INSTANTIATE_TEST_SUITE_P(
    Backends, TortureRun,
    ::testing::Values(
        RunCase{"flock", "flock://", kSafe, false},
        RunCase{"sqlite", "sqlite://?strategy=cas", kAll, false},
        RunCase{"postgresql_cas", "postgresql://?strategy=cas", kAll, true},
        RunCase{"postgresql_for_update_and_version",
                "postgresql://?strategy=for-update,postgresql://?strategy=version", kSafe, true},
        RunCase{"http", "http://", kAll, true},
        // Two `ordo serve` replicas over a primary and its synchronous standby, workers spread
        // over both; the nemesis kills replicas and crashes the primary, and the standby is
        // promoted: tokens keep growing and no update is lost; the control must lose some.
        RunCase{"http_replicas_standby", "http://?replicas=2&standby=1",
                {"strict", "control-unfenced-reads"}, true},
        // The same through one PgBouncer in session pooling, re-pointed at the promoted
        // standby; its control leaves writes unfenced (the other control, above, reads).
        RunCase{"http_replicas_standby_pgbouncer",
                "http://?replicas=2&standby=1&pgbouncer=session",
                {"strict", "control-unfenced-writes"}, true},
        // The counter in a separate database standing for the user's own, guarded by
        // ordo_fence (`ordo fence`); the control runs the same transaction without it.
        RunCase{"user_table", "postgresql://?strategy=cas", {"user-table", "control-user-table"},
                true},
        // Semaphores of 3 permits, each holder on its own slot's counter: a slot's counter sees
        // the writes of one holder at a time, or the checker finds a stale write or a lost
        // update. flock:// keeps a paused holder's permit, so only the safe modes run there.
        RunCase{"semaphore_flock", "flock://", kSafe, false, "semaphore"},
        RunCase{"semaphore_sqlite", "sqlite://?strategy=cas",
                {"fenced-reads", "control-unfenced-reads"}, false, "semaphore"},
        RunCase{"semaphore_postgresql_cas", "postgresql://?strategy=cas",
                {"strict", "control-unfenced-writes"}, true, "semaphore"},
        // Candidates, and the leader's transitions of a state object by CAS with its term. The
        // control's version-only CAS lets a deposed leader that read a fresh version through,
        // which the checker must find (stale-term).
        RunCase{"election_flock", "flock://", {"strict"}, false, "election"},
        RunCase{"election_sqlite", "sqlite://?strategy=cas", {"strict", "control-unfenced-cas"},
                false, "election"},
        RunCase{"election_postgresql_cas", "postgresql://?strategy=cas",
                {"fenced-reads", "control-unfenced-cas"}, true, "election"}),
    CaseName);

}  // namespace
