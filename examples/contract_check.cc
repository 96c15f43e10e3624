// ordo-contract-check URL — a program written only to DESIGN.md's C++ contract. It checks, on
// the backend the URL names: a conflict gives kLockHeld, a bad name kInvalidArgument, tokens grow
// after release, shared holders coexist, and (for backends shared across processes) a holder in
// another process killed with SIGKILL frees the lock and the next token is larger.
// Prints one line per check; exits 0 when all pass.
#include <ordo/ordo.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace std::chrono_literals;

namespace {

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s BACKEND_URL\n", argv[0]);
    return 2;
  }
  auto locker = ordo::Open(argv[1]);
  if (!locker.ok()) {
    std::fprintf(stderr, "open: %s\n", locker.status().message().c_str());
    return 1;
  }
  const std::string name = "contract-" + std::to_string(getpid());

  auto lease = (*locker)->Acquire({.name = name, .mode = ordo::LockMode::kExclusive, .ttl = 30s});
  Check(lease.ok() && lease->token > 0, "acquire returns a token > 0");
  if (!lease.ok()) return 1;
  auto conflict = (*locker)->Acquire({.name = name, .mode = ordo::LockMode::kExclusive});
  Check(!conflict.ok() && conflict.status().code() == ordo::StatusCode::kLockHeld,
        "a second exclusive acquire is kLockHeld");
  auto bad = (*locker)->Acquire({.name = "../escape"});
  Check(bad.status().code() == ordo::StatusCode::kInvalidArgument &&
            !bad.status().message().empty(),
        "a bad name is kInvalidArgument with a message");
  const std::uint64_t first = lease->token;
  Check((*locker)->Release(*lease).ok(), "release");
  auto next = (*locker)->Acquire({.name = name});
  Check(next.ok() && next->token > first, "the next token is larger");
  if (next.ok()) {
    // v2 surface: the fenced CAS overload refuses an older token even at the current version.
    ordo::VersionedStore& objects = (*locker)->objects();
    const std::string key = name + "-obj";
    auto created = objects.CompareAndSwap(key, 0, "\"running\"", next->token, name);
    Check(created.ok() && *created == 1, "fenced CAS creates with a live holder's token");
    auto stale = objects.CompareAndSwap(key, 1, "\"upgrading\"", first);
    Check(stale.status().code() == ordo::StatusCode::kStaleToken,
          "fenced CAS with an older token is kStaleToken");
    Check((*locker)->Release(*next).ok(), "release again");
  }

  auto s1 = (*locker)->Acquire({.name = name, .mode = ordo::LockMode::kShared});
  auto s2 = (*locker)->Acquire({.name = name, .mode = ordo::LockMode::kShared});
  Check(s1.ok() && s2.ok() && s2->token > s1->token, "two shared holders, each its own token");
  auto x = (*locker)->Acquire({.name = name, .mode = ordo::LockMode::kExclusive});
  Check(x.status().code() == ordo::StatusCode::kLockHeld, "exclusive waits for shared holders");
  if (s1.ok()) (*locker)->Release(*s1).IgnoreError();
  if (s2.ok()) (*locker)->Release(*s2).IgnoreError();

  if (std::string(argv[1]).rfind("inproc:", 0) != 0) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    const pid_t child = fork();
    if (child == 0) {
      close(fds[0]);
      auto own = ordo::Open(argv[1]);
      if (!own.ok()) _exit(3);
      auto held = (*own)->Acquire({.name = name, .ttl = 1s});
      if (!held.ok()) _exit(4);
      const std::uint64_t t = held->token;
      if (write(fds[1], &t, sizeof(t)) != sizeof(t)) _exit(5);
      pause();  // killed by the parent while holding the lock
      _exit(0);
    }
    close(fds[1]);
    std::uint64_t child_token = 0;
    const bool got = read(fds[0], &child_token, sizeof(child_token)) == sizeof(child_token);
    Check(got, "a child process acquired");
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    auto after = (*locker)->Acquire({.name = name, .ttl = 30s, .wait = 30s});
    Check(after.ok() && after->token > child_token,
          "after the holder is killed with SIGKILL the lock is free and the token larger");
    if (after.ok()) (*locker)->Release(*after).IgnoreError();
  }
  std::printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
