#include "ordo/registry.h"

#include <gtest/gtest.h>

#include "ordo/ordo.h"

namespace ordo {
namespace {

TEST(ParseBackendUrlTest, SplitsEveryPart) {
  auto url = ParseBackendUrl("postgresql://app:s%40cret@db.example:5433/ordo?strategy=cas&x=1");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->scheme, "postgresql");
  EXPECT_TRUE(url->has_authority);
  EXPECT_EQ(url->user, "app");
  EXPECT_EQ(url->password, "s@cret");
  EXPECT_EQ(url->host, "db.example");
  EXPECT_EQ(url->port, "5433");
  EXPECT_EQ(url->path, "/ordo");
  EXPECT_EQ(url->QueryOr("strategy", ""), "cas");
  EXPECT_EQ(url->QueryOr("missing", "dflt"), "dflt");
  EXPECT_EQ(url->Masked(), "postgresql://app:****@db.example:5433/ordo?strategy=cas&x=1");
}

TEST(ParseBackendUrlTest, FileAndOpaqueForms) {
  auto flock = ParseBackendUrl("flock:///var/lock/ordo");
  ASSERT_TRUE(flock.ok());
  EXPECT_TRUE(flock->has_authority);
  EXPECT_EQ(flock->host, "");
  EXPECT_EQ(flock->path, "/var/lock/ordo");
  auto inproc = ParseBackendUrl("inproc:");
  ASSERT_TRUE(inproc.ok());
  EXPECT_FALSE(inproc->has_authority);
  EXPECT_EQ(inproc->path, "");
  auto v6 = ParseBackendUrl("http://[::1]:7575");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "7575");
}

TEST(ParseBackendUrlTest, RefusesMalformedWithPasswordMasked) {
  for (const char* bad : {"", "nocolon", "://x", "sq lite:///x", "http://h:99999",
                          "http://h:0", "http://h:port", "flock:///a%zz", "x:?a=1&a=2",
                          "x:#frag", "x:/p\x01"}) {
    auto url = ParseBackendUrl(bad);
    EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  auto masked = ParseBackendUrl("postgresql://u:hunter2@h:0/db");
  ASSERT_FALSE(masked.ok());
  EXPECT_EQ(masked.status().message().find("hunter2"), std::string::npos)
      << masked.status().message();
}

TEST(ParseBackendUrlTest, MultiHostAuthorityWithAPortPerHost) {
  auto url = ParseBackendUrl(
      "postgresql://app:pw@h1:5432,h2:5433,[::1]:5434,[fe80::1%25eth0],h5/db"
      "?target_session_attrs=read-write");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  const std::vector<HostPort> expected = {{"h1", "5432"},
                                          {"h2", "5433"},
                                          {"::1", "5434"},
                                          {"fe80::1%eth0", ""},
                                          {"h5", ""}};
  EXPECT_EQ(url->hosts, expected);
  EXPECT_EQ(url->host, "h1");
  EXPECT_EQ(url->port, "5432");
  EXPECT_EQ(url->user, "app");
  EXPECT_EQ(url->password, "pw");
  EXPECT_EQ(url->path, "/db");
  EXPECT_EQ(url->QueryOr("target_session_attrs", ""), "read-write");
  EXPECT_EQ(url->Masked(),
            "postgresql://app:****@h1:5432,h2:5433,[::1]:5434,[fe80::1%25eth0],h5/db"
            "?target_session_attrs=read-write");
}

TEST(ParseBackendUrlTest, OneHostPortOnlyAndNoHost) {
  auto one = ParseBackendUrl("postgresql://db.example/ordo");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->hosts, (std::vector<HostPort>{{"db.example", ""}}));
  auto port_only = ParseBackendUrl("postgresql://:5433/ordo");
  ASSERT_TRUE(port_only.ok());
  EXPECT_EQ(port_only->hosts, (std::vector<HostPort>{{"", "5433"}}));
  auto socket_dir = ParseBackendUrl("postgresql://%2Fvar%2Frun%2Fpostgresql/ordo");
  ASSERT_TRUE(socket_dir.ok());
  EXPECT_EQ(socket_dir->host, "/var/run/postgresql");
  auto none = ParseBackendUrl("postgresql://u@/ordo?host=a,b");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->hosts.empty());
  EXPECT_EQ(none->host, "");
}

TEST(ParseBackendUrlTest, RefusesMalformedHostLists) {
  for (const char* bad : {"postgresql://h1:5432,/db", "postgresql://,h2/db",
                          "postgresql://h1,,h2/db", "postgresql://h1:5432,h2:x/db",
                          "postgresql://h1:5432,h2:0/db", "postgresql://h1:,h2/db",
                          "postgresql://[::1/db", "postgresql://[]:5432/db",
                          "postgresql://[::1]x/db", "postgresql://::1:5432/db",
                          "postgresql://h1:5432:5433/db", "postgresql://h]1/db"}) {
    auto url = ParseBackendUrl(bad);
    EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(url.status().message().find("backend URL"), std::string::npos) << bad;
  }
}

TEST(ParseBackendUrlTest, MasksPasswordsInTheQueryToo) {
  auto url = ParseBackendUrl("postgresql://u@h/db?password=hunter2&sslpassword=s3cr3t&x=1");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->QueryOr("password", ""), "hunter2");
  EXPECT_EQ(url->Masked(), "postgresql://u@h/db?password=****&sslpassword=****&x=1");
  auto bad = ParseBackendUrl("postgresql://u@h:0/db?password=hunter2");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("hunter2"), std::string::npos)
      << bad.status().message();
}

TEST(OpenTest, UnknownSchemeNamesTheKnownOnes) {
  auto r = Open("redis://localhost");
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("redis"), std::string::npos);
  EXPECT_NE(r.status().message().find("inproc:"), std::string::npos);
}

TEST(OpenTest, InprocRefusesPathsAndQueries) {
  EXPECT_EQ(Open("inproc:x").status().code(), StatusCode::kInvalidArgument);
  auto q = Open("inproc:?strategy=cas");
  EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(q.status().message().find("strategy"), std::string::npos);
  EXPECT_TRUE(Open("inproc:").ok());
}

TEST(OpenTest, EveryBuiltinSchemeIsRegistered) {
  const auto schemes = RegisteredSchemes();
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "inproc"), schemes.end());
}

}  // namespace
}  // namespace ordo
