#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <thread>

#include "bench.h"

namespace ordo::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// 1234567 -> "1,234,567"; small figures keep a decimal.
std::string Count(double v) {
  if (v < 100) return Fixed(v, 1);
  std::string digits = Fixed(v, 0);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Micros(double us) {
  if (us < 0) return "—";
  if (us < 10) return Fixed(us, 2);
  if (us < 1000) return Fixed(us, 1);
  return Count(us);
}

// Phases of a closed-loop run, published by the coordinating thread.
enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

}  // namespace

double NowSeconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

void Percentiles(std::vector<double>& us, Sample* out) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(us.size()))) - 1;
    return us[std::min(i, us.size() - 1)];
  };
  out->p50_us = at(0.50);
  out->p99_us = at(0.99);
}

Sample RunClosedLoop(const Config& cfg, int clients, const Op& op, bool time_ops) {
  std::atomic<int> phase{kWarmup};
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> completed{0};  // operations finished in the measured phase
  struct PerClient {
    std::uint64_t ok = 0;
    std::uint64_t failed = 0;
    std::string error;
    std::vector<double> latencies_us;
  };
  std::vector<PerClient> results(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      PerClient& r = results[static_cast<std::size_t>(c)];
      ready.fetch_add(1);
      std::uint64_t n = 0;
      while (true) {
        const int p = phase.load(std::memory_order_relaxed);
        if (p == kStop) break;
        // Time one operation in eight: enough samples for p99, little clock overhead.
        const bool timed = time_ops && p == kMeasure && (n++ & 7) == 0;
        const auto start = timed ? Clock::now() : Clock::time_point{};
        std::string error;
        const bool ok = op(c, &error);
        if (p != kMeasure) continue;
        completed.fetch_add(1, std::memory_order_relaxed);
        if (ok) {
          ++r.ok;
          if (timed) {
            r.latencies_us.push_back(
                std::chrono::duration<double, std::micro>(Clock::now() - start).count());
          }
        } else {
          ++r.failed;
          if (r.error.empty()) r.error = error;
        }
      }
    });
  }
  while (ready.load() < clients) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::duration<double>(cfg.warmup));
  const auto start = Clock::now();
  phase.store(kMeasure);
  std::this_thread::sleep_for(std::chrono::duration<double>(cfg.seconds));
  // A window shorter than one operation (--smoke on a slow disk) is extended until one
  // finishes, for at most 10 s.
  for (int i = 0; i < 1000 && completed.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  phase.store(kStop);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& t : threads) t.join();

  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::string error;
  std::vector<double> latencies;
  for (auto& r : results) {
    ok += r.ok;
    failed += r.failed;
    if (error.empty()) error = r.error;
    latencies.insert(latencies.end(), r.latencies_us.begin(), r.latencies_us.end());
  }
  if (ok == 0 || failed > ok) {
    return Sample::Error(std::to_string(failed) + " of " + std::to_string(ok + failed) +
                         " operations failed: " + error);
  }
  Sample s;
  s.ops_per_sec = static_cast<double>(ok) / elapsed;
  s.count = static_cast<double>(ok);
  s.elapsed = elapsed;
  Percentiles(latencies, &s);
  s.latencies_us = std::move(latencies);
  return s;
}

Sample MeasureWake(const Config& cfg, const WakeOps& ops, std::chrono::microseconds block_delay) {
  // One persistent waiter thread, driven by a generation counter, so that thread creation is
  // not part of any sample.
  std::mutex mu;
  std::condition_variable cv;
  int generation = 0;         // guarded by mu: bumped to start one wait
  int done_generation = 0;    // guarded by mu
  bool waiting = false;       // guarded by mu: the waiter is about to call wait()
  bool quit = false;          // guarded by mu
  bool wait_ok = false;       // guarded by mu
  std::string wait_error;     // guarded by mu
  Clock::time_point woke;     // guarded by mu

  std::thread waiter([&] {
    int seen = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return quit || generation != seen; });
        if (quit) return;
        seen = generation;
        waiting = true;
      }
      cv.notify_all();
      std::string error;
      bool ok = ops.wait(&error);
      const auto t1 = Clock::now();
      if (ok) ok = ops.unwait(&error);
      {
        std::lock_guard<std::mutex> lock(mu);
        woke = t1;
        wait_ok = ok;
        wait_error = error;
        done_generation = seen;
      }
      cv.notify_all();
    }
  });

  std::vector<double> latencies;
  std::string error;
  int failures = 0;
  for (int i = 0; i < cfg.wake_iterations && failures < 3; ++i) {
    std::string e;
    if (!ops.hold(&e)) {
      error = "hold: " + e;
      ++failures;
      continue;
    }
    {
      std::unique_lock<std::mutex> lock(mu);
      waiting = false;
      ++generation;
      cv.notify_all();
      cv.wait(lock, [&] { return waiting; });
    }
    // The waiter is about to block; give it time to get there (a send to a server, a LISTEN).
    std::this_thread::sleep_for(block_delay);
    const auto t0 = Clock::now();
    if (!ops.release(&e)) {
      error = "release: " + e;
      ++failures;
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done_generation == generation; });
    if (!wait_ok) {
      error = "wait: " + wait_error;
      ++failures;
      continue;
    }
    latencies.push_back(std::chrono::duration<double, std::micro>(woke - t0).count());
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    quit = true;
  }
  cv.notify_all();
  waiter.join();
  if (latencies.empty() || failures > 0) return Sample::Error(error.empty() ? "no sample" : error);
  Sample s;
  Percentiles(latencies, &s);
  s.latencies_us = std::move(latencies);
  return s;
}

Sample Merge(const std::vector<Sample>& rounds) {
  if (rounds.size() == 1) return rounds[0];
  Sample out;
  double count = 0;
  double elapsed = 0;
  for (const Sample& r : rounds) {
    if (!r.ok()) return r;
    if (r.ops_per_sec >= 0) {
      const double t = r.elapsed > 0 ? r.elapsed : 1.0;
      count += r.elapsed > 0 ? r.count : r.ops_per_sec;
      elapsed += t;
    }
    out.latencies_us.insert(out.latencies_us.end(), r.latencies_us.begin(), r.latencies_us.end());
  }
  if (elapsed > 0) out.ops_per_sec = count / elapsed;
  out.count = count;
  out.elapsed = elapsed;
  std::vector<double> sorted = out.latencies_us;
  Percentiles(sorted, &out);
  return out;
}

double Row::ratio() const {
  if (!ordo.ok() || !baseline.ok()) return -1;
  switch (kind) {
    case RowKind::kThroughput:
    case RowKind::kMemory:
      if (kind == RowKind::kMemory) return baseline.ops_per_sec / ordo.ops_per_sec;
      return ordo.ops_per_sec / baseline.ops_per_sec;
    case RowKind::kLatency:
    case RowKind::kWallTime:
      return baseline.p50_us / ordo.p50_us;
  }
  return -1;
}

void Table::Add(Row row) {
  // Progress on stderr so that a long run shows life; the table goes to stdout at the end.
  const double r = row.ratio();
  static const double start = NowSeconds();
  std::fprintf(stderr, "  [%6.1fs] %-28s %-34s %2d  %s\n", NowSeconds() - start,
               row.backend.c_str(), row.scenario.c_str(), row.clients,
               r >= 0 ? ("ratio " + Fixed(r, 2)).c_str()
                      : (row.ordo.ok() ? row.baseline.note : row.ordo.note).c_str());
  rows_.push_back(std::move(row));
}

std::string Table::Markdown() const {
  std::ostringstream out;
  out << "| backend | scenario | clients | ordo ops/s | p50 µs | p99 µs | baseline | baseline "
         "ops/s | ratio |\n";
  out << "|---|---|---:|---:|---:|---:|---|---:|---:|\n";
  for (const Row& row : rows_) {
    out << "| " << row.backend << " | " << row.scenario << " | " << row.clients << " | ";
    if (!row.ordo.ok()) {
      out << row.ordo.note << " | — | — | " << row.baseline_name << " | ";
    } else {
      switch (row.kind) {
        case RowKind::kThroughput:
          out << Count(row.ordo.ops_per_sec);
          break;
        case RowKind::kLatency:
        case RowKind::kWallTime:
          out << "—";
          break;
        case RowKind::kMemory:
          out << Fixed(row.ordo.ops_per_sec, 1) << " MiB";
          break;
      }
      out << " | " << Micros(row.ordo.p50_us) << " | " << Micros(row.ordo.p99_us) << " | "
          << row.baseline_name << " | ";
    }
    if (!row.baseline.ok()) {
      out << row.baseline.note;
    } else {
      switch (row.kind) {
        case RowKind::kThroughput:
          out << Count(row.baseline.ops_per_sec);
          break;
        case RowKind::kLatency:
          out << "p50 " << Micros(row.baseline.p50_us) << " µs";
          break;
        case RowKind::kWallTime:
          out << "mean " << Micros(row.baseline.p50_us) << " µs";
          break;
        case RowKind::kMemory:
          out << Fixed(row.baseline.ops_per_sec, 1) << " MiB";
          break;
      }
    }
    const double r = row.ratio();
    out << " | " << (r < 0 ? "—" : Fixed(r, r < 0.1 ? 3 : 2)) << " |\n";
  }
  out << "\nratio: throughput rows ordo ops/s ÷ baseline ops/s; latency rows baseline p50 ÷ ordo "
         "p50; wall-time rows baseline mean ÷ ordo mean (the p50 column holds the mean, p99 the "
         "p99); memory rows baseline peak RSS ÷ ordo peak RSS. Higher is better everywhere; 1.0 "
         "matches the raw mechanism.\n";
  for (const auto& note : notes_) out << "\n" << note << "\n";
  // Each distinct baseline script once, under the rows that ran it.
  std::vector<std::pair<std::string, std::string>> details;  // (rows, text)
  for (const Row& row : rows_) {
    if (row.detail.empty()) continue;
    const std::string who = row.backend + " — " + row.scenario;
    auto it = std::find_if(details.begin(), details.end(),
                           [&](const auto& d) { return d.second == row.detail; });
    if (it == details.end()) {
      details.emplace_back(who, row.detail);
    } else if (it->first.find(who) == std::string::npos) {
      it->first += "; " + who;
    }
  }
  if (!details.empty()) out << "\n### What the baselines ran\n";
  for (const auto& [who, text] : details) {
    out << "\n" << who << ":\n\n```\n" << text << (text.back() == '\n' ? "" : "\n") << "```\n";
  }
  return out.str();
}

}  // namespace ordo::bench
