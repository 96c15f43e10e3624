// ordo-torture on etcd://: a 3-member cluster, the tool's own nemesis pausing (SIGSTOP past the
// TTL) and killing its workers, and this test as a second nemesis that SIGKILLs (then restarts)
// and SIGSTOPs (then resumes) random etcd members throughout. The safe modes must report no
// violation; the control modes must report violations, or the run could not have caught one.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "etcd_cluster.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

TEST(EtcdTortureTest, SafeModesHoldAndControlRunsFailUnderMemberKillsAndPauses) {
  EtcdCluster cluster(3);
  const std::vector<std::string> modes = {"fenced-reads", "strict", "control-unfenced-writes",
                                          "control-unfenced-reads"};
  // etcd's shortest lease is 2 s here (1.5 × the 1 s election timeout, rounded up), so the
  // workers ask for 2 s and the tool's pauses (1.5–3 TTLs) outlast it; a long sleep between
  // read and write gives a pause many chances to fall inside a read-modify-write.
  Child torture({ORDO_TORTURE, "--backend", cluster.Url(), "--mode",
                 "fenced-reads,strict,control-unfenced-writes,control-unfenced-reads",
                 "--duration", "10s", "--ttl", "2s", "--wait", "4s", "--max-sleep", "1500ms",
                 "--workers", "4"},
                /*kill_with_parent=*/true);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> reports;  // guarded by mu
  bool done = false;                 // guarded by mu
  std::thread reader([&] {
    for (std::size_t i = 0; i < modes.size(); ++i) {
      std::string line = torture.ReadLine(std::chrono::seconds(150));
      std::lock_guard<std::mutex> lock(mu);
      if (line.empty()) break;
      reports.push_back(std::move(line));
    }
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });
  // The member nemesis, on the main thread (members must be started from the thread that
  // lives longest: they get SIGKILL when their starting thread ends).
  std::mt19937 rng(std::random_device{}());
  int member_kills = 0;
  int member_pauses = 0;
  auto idle = [&](std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu);
    return !cv.wait_for(lock, d, [&] { return done; });
  };
  while (idle(std::chrono::milliseconds(1500 + rng() % 1500))) {
    const int member = static_cast<int>(rng() % 3);
    const bool kill = rng() % 2 == 0;
    if (kill) {
      cluster.Kill(member, SIGKILL);
      ++member_kills;
    } else {
      cluster.Pause(member);
      ++member_pauses;
    }
    idle(std::chrono::milliseconds(1000 + rng() % 2000));
    if (kill) {
      cluster.Start(member);
    } else {
      cluster.Resume(member);
    }
  }
  reader.join();
  const int status = torture.Wait();
  EXPECT_TRUE(WIFEXITED(status)) << "ordo-torture status " << status;
  std::printf("etcd torture: member kills %d, member pauses %d\n", member_kills, member_pauses);
  const std::regex line(
      "torture backend=(\\S+) mode=(\\S+) ops=(\\d+) acked=(\\d+) refused=(\\d+) "
      "pauses=(\\d+) kills=(\\d+) restarts=(\\d+) violations=(\\d+)");
  ASSERT_EQ(reports.size(), modes.size()) << "ordo-torture stopped early";
  EXPECT_GT(member_kills + member_pauses, 0);
  for (std::size_t i = 0; i < reports.size(); ++i) {
    std::printf("%s\n", reports[i].c_str());
    std::smatch m;
    ASSERT_TRUE(std::regex_match(reports[i], m, line)) << "not a report line: " << reports[i];
    EXPECT_EQ(m[2].str(), modes[i]);
    const auto n = [&](int k) { return std::stoull(m[k].str()); };
    EXPECT_GT(n(4), 0u) << reports[i] << ": no acknowledged write";
    if (modes[i] == "control-unfenced-reads") {
      // Reported, not required: a lost update needs a worker paused between its plain read and
      // its fenced write while another holder reads the same value, and with etcd's 2 s
      // minimum lease a run of seconds sees too few leases for that to be reliable (it was
      // found in some runs and missed in others). control-unfenced-writes is the control that
      // proves this run can see violations.
      continue;
    }
    if (modes[i].starts_with("control-")) {
      // Catching a lost update needs a pause to land inside a read-modify-write, which a short
      // run may miss; a control run that found nothing gets one more run (tool faults only).
      std::uint64_t violations = n(9);
      if (violations == 0) {
        Child again({ORDO_TORTURE, "--backend", cluster.Url(), "--mode", modes[i], "--duration",
                     "15s", "--ttl", "2s", "--wait", "4s", "--max-sleep", "1500ms", "--workers",
                     "4"},
                    /*kill_with_parent=*/true);
        const std::string report = again.ReadLine(std::chrono::seconds(150));
        again.Wait();
        std::printf("%s (second run)\n", report.c_str());
        std::smatch m2;
        ASSERT_TRUE(std::regex_match(report, m2, line)) << "not a report line: " << report;
        violations = std::stoull(m2[9].str());
      }
      EXPECT_GT(violations, 0u) << reports[i] << ": a control run found no violation";
    } else {
      EXPECT_EQ(n(9), 0u) << reports[i] << ": violations in a safe mode";
    }
  }
}

}  // namespace
}  // namespace ordo::testing
