#include "history.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace ordo::torture {
namespace {

constexpr std::array<std::string_view, 11> kFnNames = {
    "acquire", "read", "write", "release", "final", "pause", "resume", "kill", "restart", "spawn",
    "cas"};
constexpr std::array<std::string_view, 5> kPhaseNames = {"invoke", "ok", "fail", "refused",
                                                          "info"};

std::string Clean(std::string_view text) {
  std::string out(text);
  std::replace_if(out.begin(), out.end(), [](char c) { return c == '\t' || c == '\n'; }, ' ');
  return out;
}

template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

template <std::size_t N>
std::optional<std::size_t> IndexOf(const std::array<std::string_view, N>& names,
                                   std::string_view name) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return i;
  }
  return std::nullopt;
}

}  // namespace

std::string_view FnName(Fn fn) { return kFnNames[static_cast<std::size_t>(fn)]; }
std::string_view PhaseName(Phase phase) { return kPhaseNames[static_cast<std::size_t>(phase)]; }

std::int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string FormatEvent(const Event& e) {
  std::string line = std::to_string(e.t_ns);
  for (const std::string& field :
       {Clean(e.process), std::to_string(e.op), std::string(FnName(e.fn)),
        std::string(PhaseName(e.phase)), std::to_string(e.lease), std::to_string(e.sent),
        std::to_string(e.value), Clean(e.detail)}) {
    line += '\t';
    line += field;
  }
  line += '\n';
  return line;
}

std::optional<Event> ParseEvent(std::string_view line) {
  std::vector<std::string_view> f;
  std::size_t start = 0;
  while (true) {
    const std::size_t tab = line.find('\t', start);
    f.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  if (f.size() != 9 || f[1].empty()) return std::nullopt;
  Event e;
  const auto fn = IndexOf(kFnNames, f[3]);
  const auto phase = IndexOf(kPhaseNames, f[4]);
  if (!ParseNumber(f[0], e.t_ns) || !ParseNumber(f[2], e.op) || !fn || !phase ||
      !ParseNumber(f[5], e.lease) || !ParseNumber(f[6], e.sent) || !ParseNumber(f[7], e.value)) {
    return std::nullopt;
  }
  e.process = std::string(f[1]);
  e.fn = static_cast<Fn>(*fn);
  e.phase = static_cast<Phase>(*phase);
  e.detail = std::string(f[8]);
  return e;
}

HistoryWriter::HistoryWriter(const std::string& path, std::string process)
    : process_(std::move(process)) {
  fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    std::fprintf(stderr, "ordo-torture: cannot open history %s: %s\n", path.c_str(),
                 std::strerror(errno));
    std::abort();
  }
}

HistoryWriter::~HistoryWriter() {
  if (fd_ >= 0) close(fd_);
}

std::uint64_t HistoryWriter::Invoke(Fn fn, std::uint64_t lease, std::uint64_t sent,
                                    std::int64_t value, std::string_view detail) {
  const std::uint64_t op = next_op_++;
  Append({.t_ns = MonotonicNs(), .process = process_, .op = op, .fn = fn,
          .phase = Phase::kInvoke, .lease = lease, .sent = sent, .value = value,
          .detail = std::string(detail)});
  return op;
}

void HistoryWriter::Complete(std::uint64_t op, Fn fn, Phase phase, std::uint64_t lease,
                             std::uint64_t sent, std::int64_t value, std::string_view detail) {
  Append({.t_ns = MonotonicNs(), .process = process_, .op = op, .fn = fn, .phase = phase,
          .lease = lease, .sent = sent, .value = value, .detail = std::string(detail)});
}

void HistoryWriter::Note(Fn fn, Phase phase, std::int64_t value, std::string_view detail) {
  const std::uint64_t op = Invoke(fn, 0, 0, value, detail);
  Complete(op, fn, phase, 0, 0, value, detail);
}

void HistoryWriter::Append(const Event& event) {
  // One write(2) per line: O_APPEND makes it land whole at the end of the file.
  const std::string line = FormatEvent(event);
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "ordo-torture: history write failed: %s\n", std::strerror(errno));
      std::abort();
    }
    done += static_cast<std::size_t>(n);
  }
}

LoadedHistory LoadHistory(const std::vector<std::string>& paths) {
  LoadedHistory out;
  for (const std::string& path : paths) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      // A last line without its '\n' was cut short by a SIGKILL mid-write.
      if (in.eof()) {
        ++out.malformed;
        break;
      }
      if (auto e = ParseEvent(line)) {
        out.events.push_back(std::move(*e));
      } else {
        ++out.malformed;
      }
    }
  }
  std::stable_sort(out.events.begin(), out.events.end(),
                   [](const Event& a, const Event& b) { return a.t_ns < b.t_ns; });
  return out;
}

}  // namespace ordo::torture
