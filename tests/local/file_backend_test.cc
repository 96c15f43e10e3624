// What is specific to flock:// and fcntl:// (the shared contract is tests/conformance): the
// lock directory and its files, fd-bound lifetime (SIGSTOP, SIGKILL, fork, exec), tokens that
// survive reopening, cross-process Describe and strict mode, waits that block without spinning,
// and the URL's parameters.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "ordo/ordo.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

#define ASSERT_OK(expr)                                           \
  do {                                                            \
    const auto& ordo_r_ = (expr);                                 \
    ASSERT_TRUE(ordo_r_.ok()) << StatusOf(ordo_r_).ToString();    \
  } while (false)

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

LockRequest Exclusive(const std::string& name, std::chrono::milliseconds wait = 0ms) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = 30s, .wait = wait};
}

// Every path under `root`, recursively.
std::set<std::string> Tree(const std::string& root) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) out.insert(e.path().string());
  return out;
}

// The first line the helper prints for `argv`, after it exited.
std::string HelperLine(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ORDO_LOCAL_HELPER};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child(argv);
  std::string line = child.ReadLine();
  child.Wait();
  return line;
}

class FileBackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = parent_.path() + "/locks";
    url_ = GetParam() + "://" + dir_;
    auto opened = Open(url_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    locker_ = std::move(*opened);
  }

  std::unique_ptr<Locker> Reopen() {
    auto opened = Open(url_);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  // A worker process holding `name` (see tests/support/worker.cc); returns its token.
  std::uint64_t StartHolder(Child& child) {
    const std::string line = child.ReadLine();
    EXPECT_EQ(line.rfind("token ", 0), 0u) << "worker said '" << line << "'";
    return line.rfind("token ", 0) == 0 ? std::stoull(line.substr(6)) : 0;
  }

  TempDir parent_;
  std::string dir_;
  std::string url_;
  std::unique_ptr<Locker> locker_;
};

TEST_P(FileBackendTest, DirectoryIs0700AndLockFilesAre0600) {
  struct stat st{};
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto lease = locker_->Acquire(Exclusive("job"));
  ASSERT_OK(lease);
  ASSERT_EQ(lstat((dir_ + "/job").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_OK(locker_->Release(*lease));
  // Describe of a name never acquired creates nothing.
  EXPECT_EQ(locker_->Describe("never").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ + "/never"));
}

TEST_P(FileBackendTest, BadNamesCreateNoFileAnywhere) {
  const auto before = Tree(parent_.path());
  const std::vector<std::string> bad = {"",          "..",       "../escape", "/abs",
                                        "a/b",       ".hidden",  ".fenced",   ".objects",
                                        "sp ace",    std::string("nul\0x", 5),
                                        std::string(129, 'n')};
  for (const auto& name : bad) {
    EXPECT_EQ(locker_->Acquire(Exclusive(name)).status().code(), StatusCode::kInvalidArgument)
        << name;
    EXPECT_EQ(locker_->Describe(name).status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(locker_->fenced().Write(name, "x", 1).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(locker_->fenced().Read(name, 1).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(locker_->fenced().Write("good", "x", 1, name).status().code(),
              name.empty() ? StatusCode::kOk : StatusCode::kInvalidArgument);
    EXPECT_EQ(locker_->objects().CompareAndSwap(name, 0, "{}").status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(locker_->objects().Get(name).status().code(), StatusCode::kInvalidArgument);
  }
  auto after = Tree(parent_.path());
  after.erase(dir_ + "/.fenced/good");  // the one valid write above (empty lock name: not strict)
  EXPECT_EQ(before, after);
}

TEST_P(FileBackendTest, MissingParentIsInvalidArgumentNamingThePath) {
  const std::string missing = parent_.path() + "/no/such/parent/locks";
  auto opened = Open(GetParam() + "://" + missing);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(opened.status().message(), HasSubstr(missing));
  EXPECT_THAT(opened.status().message(), HasSubstr("parent"));
  EXPECT_FALSE(fs::exists(parent_.path() + "/no"));
}

TEST_P(FileBackendTest, AFileInsteadOfTheDirectoryIsInvalidArgument) {
  const std::string file = parent_.path() + "/plain-file";
  std::ofstream(file) << "not a directory";
  auto opened = Open(GetParam() + "://" + file);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(opened.status().message(), HasSubstr(file));
  EXPECT_THAT(opened.status().message(), HasSubstr("not a directory"));
}

TEST_P(FileBackendTest, AnUnwritableDirectoryIsInvalidArgument) {
  const std::string ro = parent_.path() + "/read-only";
  ASSERT_EQ(mkdir(ro.c_str(), 0555), 0);
  ASSERT_EQ(chmod(ro.c_str(), 0555), 0);
  const std::string url = GetParam() + "://" + ro;
  if (geteuid() != 0) {
    auto opened = Open(url);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(opened.status().message(), HasSubstr("not writable"));
    return;
  }
  // Root may write anywhere, so the check runs in a child that dropped to 'nobody' (the mode
  // bits are what is tested; read-only mounts need privileges a test should not use).
  ASSERT_EQ(chmod(parent_.path().c_str(), 0755), 0);
  const std::string line = HelperLine({"open-as", url, "65534"});
  EXPECT_THAT(line, HasSubstr("invalid_argument")) << line;
  EXPECT_THAT(line, HasSubstr("not writable")) << line;
  EXPECT_THAT(line, HasSubstr(ro)) << line;
  EXPECT_EQ(HelperLine({"open-as", GetParam() + "://" + dir_, "65534"}).rfind("invalid_argument", 0),
            0u)
      << "a 0700 directory of root's is not usable by nobody either";
}

TEST_P(FileBackendTest, UrlShapeAndParametersAreChecked) {
  const std::string scheme = GetParam();
  auto durable = Open(scheme + "://" + dir_ + "?durable=1");
  ASSERT_OK(durable);
  auto lease = (*durable)->Acquire(Exclusive("durable"));
  ASSERT_OK(lease);
  ASSERT_OK((*durable)->Release(*lease));
  ASSERT_OK((*durable)->fenced().Write("k", "v", lease->token));
  ASSERT_OK(Open(scheme + "://" + dir_ + "?durable=0"));

  auto bad_value = Open(scheme + "://" + dir_ + "?durable=yes");
  EXPECT_EQ(bad_value.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_value.status().message(), HasSubstr("durable"));
  auto unknown = Open(scheme + "://" + dir_ + "?durabel=1");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("durabel"));
  auto host = Open(scheme + "://somehost" + dir_);
  EXPECT_EQ(host.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(host.status().message(), HasSubstr("host"));
  EXPECT_EQ(Open(scheme + ":relative/dir").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Open(scheme + ":").status().code(), StatusCode::kInvalidArgument);
}

TEST_P(FileBackendTest, TraitsSayFdBoundAndShared) {
  EXPECT_FALSE(locker_->traits().expires_by_ttl);
  EXPECT_TRUE(locker_->traits().shared_across_processes);
}

TEST_P(FileBackendTest, SigstoppedHolderStillHoldsPastItsTtl) {
  Child holder({ORDO_TEST_WORKER, "hold", url_, "stopped", "exclusive", "100"});
  const std::uint64_t token = StartHolder(holder);
  ASSERT_GT(token, 0u);
  holder.Kill(SIGSTOP);
  auto waited = locker_->Acquire(Exclusive("stopped", 500ms));  // 5x the holder's ttl
  EXPECT_EQ(waited.status().code(), StatusCode::kLockHeld);
  EXPECT_THAT(waited.status().message(), HasSubstr("token " + std::to_string(token)));
  auto state = locker_->Describe("stopped");
  ASSERT_OK(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].token, token);
  holder.Kill(SIGCONT);
  holder.WriteLine("release");
  EXPECT_EQ(holder.ReadLine(), "released");
  auto after = locker_->Acquire(Exclusive("stopped"));
  ASSERT_OK(after);
  EXPECT_GT(after->token, token);
  ASSERT_OK(locker_->Release(*after));
}

TEST_P(FileBackendTest, SigkilledHolderFreesAtOnceAndDescribeForgetsIt) {
  Child holder({ORDO_TEST_WORKER, "hold", url_, "killed", "shared", "30000"});
  const std::uint64_t token = StartHolder(holder);
  auto state = locker_->Describe("killed");
  ASSERT_OK(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].token, token);
  EXPECT_EQ(state->holders[0].mode, LockMode::kShared);
  EXPECT_THAT(state->holders[0].owner, HasSubstr(":" + std::to_string(holder.pid()) + ":"))
      << "the default owner names the holder's pid";
  EXPECT_EQ(locker_->Acquire(Exclusive("killed")).status().code(), StatusCode::kLockHeld);
  holder.Kill(SIGKILL);
  holder.Wait();
  state = locker_->Describe("killed");
  ASSERT_OK(state);
  EXPECT_TRUE(state->holders.empty()) << "the record a killed holder left behind is dead";
  EXPECT_EQ(state->last_token, token);
  auto lease = locker_->Acquire(Exclusive("killed"));  // no wait: free at once
  ASSERT_OK(lease);
  EXPECT_GT(lease->token, token);
  state = locker_->Describe("killed");
  ASSERT_OK(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].token, lease->token);
  EXPECT_EQ(state->last_token, lease->token);
  ASSERT_OK(locker_->Release(*lease));
}

TEST_P(FileBackendTest, LockDescriptorIsCloseOnExec) {
  auto lease = locker_->Acquire(Exclusive("cloexec"));
  ASSERT_OK(lease);
  const std::string lock_file = dir_ + "/cloexec";
  int found = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = fs::read_symlink(e.path(), ec);
    if (ec || target.string() != lock_file) continue;
    ++found;
    const int fd = std::stoi(e.path().filename().string());
    EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0) << "fd " << fd;
  }
  EXPECT_GE(found, 1) << "the lease's descriptor should be open in this process";
  // And a child started with exec inherits nothing of the lock directory.
  Child child({ORDO_LOCAL_HELPER, "fds"});
  for (std::string line = child.ReadLine(); line != "end" && !line.empty(); line = child.ReadLine()) {
    EXPECT_THAT(line, ::testing::Not(HasSubstr(dir_))) << "leaked into the child: " << line;
  }
  child.Wait();
  ASSERT_OK(locker_->Release(*lease));
}

TEST_P(FileBackendTest, ReleaseFreesTheLockEvenIfAForkedChildSharesTheDescriptor) {
  auto lease = locker_->Acquire(Exclusive("forked"));
  ASSERT_OK(lease);
  int gate[2];
  ASSERT_EQ(pipe(gate), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Holds copies of every descriptor, the lease's included, without exec.
    close(gate[1]);
    char c;
    while (read(gate[0], &c, 1) < 0) {
    }
    _exit(0);
  }
  close(gate[0]);
  ASSERT_OK(locker_->Release(*lease));
  auto other = Reopen();
  auto next = other->Acquire(Exclusive("forked"));
  EXPECT_TRUE(next.ok()) << "a forked child kept the released lock: " << next.status().ToString();
  close(gate[1]);
  waitpid(child, nullptr, 0);
  if (next.ok()) ASSERT_OK(other->Release(*next));
}

TEST_P(FileBackendTest, TokensSurviveReopeningTheDirectory) {
  std::uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto lease = locker_->Acquire(Exclusive("persist"));
    ASSERT_OK(lease);
    last = lease->token;
    ASSERT_OK(locker_->Release(*lease));
  }
  locker_.reset();
  auto reopened = Reopen();
  auto state = reopened->Describe("persist");
  ASSERT_OK(state);
  EXPECT_EQ(state->last_token, last);
  EXPECT_TRUE(state->holders.empty());
  auto lease = reopened->Acquire(Exclusive("persist"));
  ASSERT_OK(lease);
  EXPECT_EQ(lease->token, last + 1);
  ASSERT_OK(reopened->Release(*lease));
}

TEST_P(FileBackendTest, ClosingTheLockerReleasesItsLeases) {
  auto lease = locker_->Acquire(Exclusive("owned"));
  ASSERT_OK(lease);
  locker_.reset();
  auto other = Reopen();
  auto next = other->Acquire(Exclusive("owned"));
  ASSERT_OK(next);
  ASSERT_OK(other->Release(*next));
}

TEST_P(FileBackendTest, StrictModeSeesLiveHoldersOfOtherProcesses) {
  Child holder({ORDO_TEST_WORKER, "hold", url_, "strict", "exclusive", "30000"});
  const std::uint64_t token = StartHolder(holder);
  ASSERT_OK(locker_->fenced().Write("data", "by child's token", token, "strict"));
  holder.Kill(SIGKILL);
  holder.Wait();
  auto late = locker_->fenced().Write("data", "late", token, "strict");
  EXPECT_EQ(late.status().code(), StatusCode::kStaleToken) << late.status().ToString();
  EXPECT_EQ(late.status().current(), token);
  auto value = locker_->fenced().Read("data");
  ASSERT_OK(value);
  EXPECT_EQ(value->data, "by child's token");
}

TEST_P(FileBackendTest, StoresKeepFilesUnderDotDirectoriesAndSurviveReopening) {
  ASSERT_OK(locker_->fenced().Write("report", "v1", 4));
  ASSERT_OK(locker_->objects().CompareAndSwap("state", 0, R"({"s":1})"));
  EXPECT_TRUE(fs::is_regular_file(dir_ + "/.fenced/report"));
  EXPECT_TRUE(fs::is_regular_file(dir_ + "/.objects/state"));
  auto listed = locker_->List("", 100);
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty()) << "store files are not locks";
  // A CAS that fails on a missing key leaves nothing behind.
  EXPECT_EQ(locker_->objects().CompareAndSwap("absent", 3, "{}").status().code(),
            StatusCode::kVersionMismatch);
  EXPECT_FALSE(fs::exists(dir_ + "/.objects/absent"));
  locker_.reset();
  auto reopened = Reopen();
  EXPECT_EQ(reopened->fenced().Write("report", "old", 3).status().code(),
            StatusCode::kStaleToken);
  auto obj = reopened->objects().Get("state");
  ASSERT_OK(obj);
  EXPECT_EQ(obj->version, 1u);
}

TEST_P(FileBackendTest, SymbolicLinkAtALockNameIsRefusedNotFollowed) {
  const std::string target = parent_.path() + "/outside";
  ASSERT_EQ(symlink(target.c_str(), (dir_ + "/evil").c_str()), 0);
  auto lease = locker_->Acquire(Exclusive("evil"));
  EXPECT_EQ(lease.status().code(), StatusCode::kInvalidArgument) << lease.status().ToString();
  EXPECT_THAT(lease.status().message(), HasSubstr("symbolic link"));
  EXPECT_FALSE(fs::exists(target));
}

// Waiting without spinning is a conformance case (tests/conformance), run on every backend.

TEST_P(FileBackendTest, WaitEndsOnTimeEvenWhenTheThreadBlocksAllSignals) {
  auto held = locker_->Acquire(Exclusive("masked"));
  ASSERT_OK(held);
  StatusCode code = StatusCode::kOk;
  std::chrono::steady_clock::duration took{};
  bool mask_restored = false;
  std::thread waiter([&] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, nullptr);
    const auto t0 = std::chrono::steady_clock::now();
    code = locker_->Acquire(Exclusive("masked", 300ms)).status().code();
    took = std::chrono::steady_clock::now() - t0;
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, nullptr, &now);
    mask_restored = sigismember(&now, SIGRTMAX - 6) == 1 && sigismember(&now, SIGUSR1) == 1;
  });
  waiter.join();
  EXPECT_EQ(code, StatusCode::kLockHeld);
  EXPECT_GE(took, 280ms);
  EXPECT_LT(took, 10s);
  EXPECT_TRUE(mask_restored) << "the thread's signal mask must be left as it was";
  ASSERT_OK(locker_->Release(*held));
}

TEST_P(FileBackendTest, AWaiterIsWokenByAnotherProcessRelease) {
  Child holder({ORDO_TEST_WORKER, "hold", url_, "handoff", "exclusive", "30000"});
  const std::uint64_t token = StartHolder(holder);
  Result<Lease> waited = InternalError("not run");
  std::thread waiter([&] { waited = locker_->Acquire(Exclusive("handoff", 60s)); });
  holder.WriteLine("release");
  EXPECT_EQ(holder.ReadLine(), "released");
  waiter.join();
  ASSERT_OK(waited);
  EXPECT_GT(waited->token, token);
  ASSERT_OK(locker_->Release(*waited));
}

// Descriptor reuse (a released descriptor is kept for the next acquisition of its name).

// Whether a fresh process, through a Locker of its own, is refused `name` right now.
bool HeldForAnotherProcess(const std::string& url, const std::string& name) {
  const pid_t child = fork();
  if (child == 0) {
    auto locker = Open(url);
    if (!locker.ok()) _exit(2);
    auto lease = (*locker)->Acquire(Exclusive(name));
    _exit(lease.ok() ? 1 : lease.status().code() == StatusCode::kLockHeld ? 0 : 3);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return false;
  EXPECT_NE(WEXITSTATUS(status), 2);
  EXPECT_NE(WEXITSTATUS(status), 3);
  return WEXITSTATUS(status) == 0;
}

// The descriptors of this process open on `path`.
int OpenDescriptorsOf(const std::string& path) {
  int found = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (fs::read_symlink(e.path(), ec).string() == path && !ec) ++found;
  }
  return found;
}

TEST_P(FileBackendTest, ReleasedDescriptorsAreReusedAndStillExclude) {
  const std::string file = dir_ + "/reused";
  std::uint64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    auto lease = locker_->Acquire(Exclusive("reused"));
    ASSERT_OK(lease);
    EXPECT_GT(lease->token, last);
    last = lease->token;
    ASSERT_OK(locker_->Release(*lease));
  }
  EXPECT_EQ(OpenDescriptorsOf(file), 1) << "one released descriptor is kept, none leaks";
  // Through the reused descriptor the lock excludes another process, and its release frees it.
  auto lease = locker_->Acquire(Exclusive("reused"));
  ASSERT_OK(lease);
  EXPECT_EQ(OpenDescriptorsOf(file), 1);
  EXPECT_TRUE(HeldForAnotherProcess(url_, "reused"));
  EXPECT_EQ(locker_->Acquire(Exclusive("reused")).status().code(), StatusCode::kLockHeld)
      << "two acquisitions in one Locker never share a descriptor";
  auto state = locker_->Describe("reused");
  ASSERT_OK(state);
  ASSERT_EQ(state->holders.size(), 1u) << "the records of released holders are dead";
  EXPECT_EQ(state->holders[0].token, lease->token);
  ASSERT_OK(locker_->Release(*lease));
  EXPECT_FALSE(HeldForAnotherProcess(url_, "reused"));
  state = locker_->Describe("reused");
  ASSERT_OK(state);
  EXPECT_TRUE(state->holders.empty());
}

TEST_P(FileBackendTest, ClosingOtherDescriptorsOfTheFileKeepsTheLock) {
  // Classic POSIX locks would be dropped by any close of the file in this process; the locks
  // used here belong to the holder's own open file description.
  ASSERT_OK(locker_->Release(*locker_->Acquire(Exclusive("closing"))));  // one kept for reuse
  auto lease = locker_->Acquire(Exclusive("closing"));
  ASSERT_OK(lease);
  const std::string file = dir_ + "/closing";
  for (int i = 0; i < 3; ++i) {
    const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  ASSERT_OK(locker_->Describe("closing"));  // opens and closes a descriptor of its own
  {
    auto other = Reopen();
    ASSERT_EQ(other->Acquire(Exclusive("closing")).status().code(), StatusCode::kLockHeld);
    // Destroying a Locker closes its descriptors, idle ones included.
    ASSERT_OK(other->Release(*other->Acquire(Exclusive("closing-too"))));
  }
  EXPECT_TRUE(HeldForAnotherProcess(url_, "closing"));
  ASSERT_OK(locker_->Release(*lease));
  EXPECT_FALSE(HeldForAnotherProcess(url_, "closing"));
}

TEST_P(FileBackendTest, AnUnlinkedLockFileIsNotReused) {
  ASSERT_OK(locker_->Release(*locker_->Acquire(Exclusive("unlinked"))));
  const std::string file = dir_ + "/unlinked";
  ASSERT_EQ(::unlink(file.c_str()), 0);
  // A kept descriptor of the unlinked file would lock a file nobody else can open.
  auto lease = locker_->Acquire(Exclusive("unlinked"));
  ASSERT_OK(lease);
  EXPECT_TRUE(fs::exists(file));
  EXPECT_TRUE(HeldForAnotherProcess(url_, "unlinked"));
  ASSERT_OK(locker_->Release(*lease));
}

TEST_P(FileBackendTest, AForkedChildDoesNotReuseItsParentsDescriptors) {
  // The child inherits the kept descriptor, hence the same open file description: were it
  // reused on both sides, parent and child would hold the lock at once.
  ASSERT_OK(locker_->Release(*locker_->Acquire(Exclusive("inherited"))));
  int ready[2];
  int done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    close(done[1]);
    auto lease = locker_->Acquire(Exclusive("inherited"));
    const char c = lease.ok() ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(2);
    char d;
    while (read(done[0], &d, 1) < 0) {
    }
    _exit(0);  // still holding: the kernel frees the lock with the process
  }
  close(ready[1]);
  close(done[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_EQ(c, 'y') << "the child could not take the free lock";
  auto lease = locker_->Acquire(Exclusive("inherited"));
  EXPECT_EQ(lease.status().code(), StatusCode::kLockHeld)
      << "parent and forked child both hold the lock";
  close(done[1]);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  if (lease.ok()) ASSERT_OK(locker_->Release(*lease));
  auto after = locker_->Acquire(Exclusive("inherited"));
  ASSERT_OK(after);
  ASSERT_OK(locker_->Release(*after));
}

// The fast admission of an exclusive holder (lock_file.h): one lock call that takes the guard,
// proves no permit is live and claims slot 0, then one write for the token and the record.

TEST_P(FileBackendTest, ProcessesInterleavingOnOneNameExcludeAndTokensGrow) {
  // Shared with the children: who is inside, the last token seen, and what went wrong.
  struct Shared {
    std::atomic<int> inside;
    std::atomic<std::uint64_t> last;
    std::atomic<int> overlaps;
    std::atomic<int> backwards;
    std::atomic<int> unseen;
    std::atomic<int> failures;
    std::atomic<int> ready;
    std::atomic<int> last_child;
    std::atomic<int> handovers;  // acquisitions by another child than the previous one
  };
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* shared = new (mem) Shared{};
  shared->last_child.store(-1);
  constexpr int kChildren = 3;
  constexpr int kRounds = 150;
  std::vector<pid_t> children;
  for (int c = 0; c < kChildren; ++c) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Each child reuses its descriptor round after round; the last one takes the lock
      // shared every third round, which admits it the long way and publishes in slot 0.
      auto locker = Open(url_);
      if (!locker.ok()) _exit(2);
      shared->ready.fetch_add(1);
      const auto start_by = std::chrono::steady_clock::now() + 10s;
      while (shared->ready.load() < kChildren && std::chrono::steady_clock::now() < start_by) {
        std::this_thread::yield();
      }
      for (int i = 0; i < kRounds; ++i) {
        LockRequest request = Exclusive("interleaved", 10s);
        if (c == kChildren - 1 && i % 3 == 0) request.mode = LockMode::kShared;
        auto lease = (*locker)->Acquire(request);
        if (!lease.ok()) {
          shared->failures.fetch_add(1);
          continue;
        }
        if (shared->inside.fetch_add(1) != 0) shared->overlaps.fetch_add(1);
        if (lease->token <= shared->last.load()) shared->backwards.fetch_add(1);
        shared->last.store(lease->token);
        if (shared->last_child.exchange(c) != c) shared->handovers.fetch_add(1);
        std::this_thread::yield();  // let the others queue up on the lock
        if (i % 10 == 0) {
          // Another Locker is another open file description, like another process.
          auto other = Open(url_);
          auto state = other.ok() ? (*other)->Describe("interleaved") : Result<LockState>(other.status());
          if (!state.ok() || state->holders.size() != 1 ||
              state->holders[0].token != lease->token || state->last_token != lease->token) {
            shared->unseen.fetch_add(1);
          }
        }
        shared->inside.fetch_sub(1);
        if (!(*locker)->Release(*lease).ok()) shared->failures.fetch_add(1);
        // Give another child the lock before taking it again (for 2 ms at most): without this
        // one child may win every round and nothing interleaves.
        const auto turn_by = std::chrono::steady_clock::now() + 2ms;
        while (shared->last_child.load() == c && std::chrono::steady_clock::now() < turn_by) {
          std::this_thread::yield();
        }
      }
      _exit(0);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(shared->failures.load(), 0);
  EXPECT_GE(shared->handovers.load(), 10) << "the children hardly interleaved: nothing was tested";
  EXPECT_EQ(shared->overlaps.load(), 0) << "two processes held the lock at once";
  EXPECT_EQ(shared->backwards.load(), 0) << "a token did not grow across processes";
  EXPECT_EQ(shared->unseen.load(), 0) << "a holder's record or token was not what it was issued";
  auto state = locker_->Describe("interleaved");
  ASSERT_OK(state);
  EXPECT_EQ(state->last_token, std::uint64_t{kChildren * kRounds}) << "one token per acquisition";
  EXPECT_TRUE(state->holders.empty());
  munmap(mem, sizeof(Shared));
}

TEST_P(FileBackendTest, AFastExclusiveHolderIsSeenByPermitsAndPermitsKeepItOut) {
  LockRequest permit = Exclusive("mixed");
  permit.limit = 2;
  ASSERT_OK(locker_->Release(*locker_->Acquire(Exclusive("mixed"))));  // a descriptor to reuse
  auto lease = locker_->Acquire(Exclusive("mixed"));
  ASSERT_OK(lease);
  auto other = Reopen();
  auto refused = other->Acquire(permit);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << refused.status().ToString();
  EXPECT_EQ(other->Acquire(Exclusive("mixed")).status().code(), StatusCode::kLockHeld);
  LockRequest shared = Exclusive("mixed");
  shared.mode = LockMode::kShared;
  EXPECT_EQ(other->Acquire(shared).status().code(), StatusCode::kLockHeld);
  auto state = other->Describe("mixed");
  ASSERT_OK(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].token, lease->token);
  EXPECT_EQ(state->last_token, lease->token);
  ASSERT_OK(locker_->Release(*lease));

  // A live permit must keep an exclusive holder out, the reused descriptor's fast try included.
  auto held = other->Acquire(permit);
  ASSERT_OK(held);
  auto plain = locker_->Acquire(Exclusive("mixed"));
  EXPECT_EQ(plain.status().code(), StatusCode::kInvalidArgument) << plain.status().ToString();
  state = other->Describe("mixed");
  ASSERT_OK(state);
  EXPECT_EQ(state->last_token, held->token) << "a refused holder issued no token";
  ASSERT_OK(other->Release(*held));
  auto after = locker_->Acquire(Exclusive("mixed"));
  ASSERT_OK(after);
  EXPECT_GT(after->token, held->token);
  ASSERT_OK(locker_->Release(*after));
}

INSTANTIATE_TEST_SUITE_P(Local, FileBackendTest, ::testing::Values("flock", "fcntl"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace ordo::testing
