// ordo-election-example URL ELECTION CANDIDATE [TTL_MS [STEP_MS [STEPS]]] — a leader that drives
// a state machine with fenced transitions, the pattern of "leader election plus CAS".
//
// Each process campaigns in ELECTION. The leader moves the object "<ELECTION>-state" through
// running -> upgrading -> running, one transition per step: it reads the state, does the step's
// work (STEP_MS of sleep here), then calls
//
//   machine.Transition(key, from, to, leadership.token(), election.name());
//
// with its term as the fencing token and the election as the lock name (strict mode). A leader
// that was paused past its TTL (SIGSTOP, a long GC pause, a VM migration) does not know it was
// deposed when it wakes: its transition is refused with kStaleToken although the version it
// read is still the current one, because another candidate now leads with a larger term. No
// check of lost() just before the write could close that window; the fence does.
//
// Run two of them, then pause the leader past its TTL (README, "Leader election"):
//   ordo-election-example sqlite:///tmp/e.db deploy a & ordo-election-example sqlite:///tmp/e.db deploy b &
//   kill -STOP <the leader's pid>; sleep 2; kill -CONT <it>
//
// Prints one line per event, "CANDIDATE: …". Exit codes: 0 done (STEPS transitions made, or
// leadership resigned), 3 deposed (a transition refused with kStaleToken, or leadership lost),
// 1 any other error, 2 usage.
#include <ordo/ordo.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

constexpr int kExitDeposed = 3;

std::string candidate;

void Say(const std::string& line) {
  std::printf("%s: %s\n", candidate.c_str(), line.c_str());
  std::fflush(stdout);  // a pipe sees each event as it happens
}

int Fail(const std::string& what, const ordo::Status& s) {
  Say(what + ": " + s.ToString());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 7) {
    std::fprintf(stderr, "usage: %s URL ELECTION CANDIDATE [TTL_MS [STEP_MS [STEPS]]]\n",
                 argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  candidate = argv[3];
  const std::chrono::milliseconds ttl(argc > 4 ? std::atol(argv[4]) : 1000);
  const std::chrono::milliseconds step(argc > 5 ? std::atol(argv[5]) : 500);
  const long steps = argc > 6 ? std::atol(argv[6]) : 0;  // 0: lead until deposed

  auto locker = ordo::Open(url);
  if (!locker.ok()) return Fail("open " + url, locker.status());
  ordo::Election election(**locker, argv[2]);
  ordo::StateMachine machine((*locker)->objects(),
                             {{"running", "upgrading"}, {"upgrading", "running"}});
  const std::string key = election.name() + "-state";

  Say("campaigning in election '" + election.name() + "'");
  auto leadership = election.Campaign({.candidate = candidate, .ttl = ttl, .wait = 1min});
  while (!leadership.ok() && leadership.status().code() == ordo::StatusCode::kLockHeld) {
    leadership = election.Campaign({.candidate = candidate, .ttl = ttl, .wait = 1min});
  }
  if (!leadership.ok()) return Fail("campaign", leadership.status());
  const std::uint64_t term = leadership->token();
  const std::string me = "term " + std::to_string(term);
  Say("leader, " + me);

  // The first leader ever creates the object, fenced like every later write.
  auto created = (*locker)->objects().CompareAndSwap(key, 0, "\"running\"", term,
                                                     election.name());
  if (created.ok()) {
    Say(me + ": created " + key + " (running) at version " + std::to_string(*created));
  } else if (created.status().code() != ordo::StatusCode::kVersionMismatch) {
    return Fail("create " + key, created.status());
  }

  for (long done = 0; steps == 0 || done < steps; ++done) {
    if (leadership->lost()) {
      Say(me + ": leadership lost: " + leadership->Release().ToString());
      return kExitDeposed;
    }
    auto read = (*locker)->objects().Get(key);
    if (!read.ok()) return Fail("read " + key, read.status());
    const std::string from = read->value == "\"running\"" ? "running" : "upgrading";
    const std::string to = from == "running" ? "upgrading" : "running";
    Say(me + ": read version " + std::to_string(read->version) + " (" + from + ")");

    std::this_thread::sleep_for(step);  // the work of this step; a pause may strike here

    auto moved = machine.Transition(key, from, to, term, election.name());
    if (moved.ok()) {
      Say(me + ": " + from + " -> " + to + " at version " + std::to_string(*moved));
      continue;
    }
    if (moved.status().code() != ordo::StatusCode::kStaleToken) {
      return Fail(from + " -> " + to, moved.status());
    }
    // Deposed while paused. Show that the version was not what stopped the write.
    auto now = (*locker)->objects().Get(key);
    const std::string version =
        now.ok() && now->version == read->version
            ? "version " + std::to_string(read->version) + " still current"
            : "version now " + (now.ok() ? std::to_string(now->version) : now.status().ToString());
    Say(me + ": " + from + " -> " + to + " refused (" + version +
        "): " + moved.status().ToString());
    auto state = election.Leader();
    if (!state.ok()) {
      Say("deposed; the leader is unknown: " + state.status().ToString());
    } else if (state->leader) {
      Say("deposed: the leader is " + state->leader->candidate + ", term " +
          std::to_string(state->leader->term));
    } else {
      Say("deposed: nobody leads now; the last term was " + std::to_string(state->last_term));
    }
    return kExitDeposed;
  }
  ordo::Status resigned = election.Resign(*leadership);
  Say(me + ": resigned" + (resigned.ok() ? "" : ": " + resigned.ToString()));
  return resigned.ok() ? 0 : kExitDeposed;
}
