#include "ordo/names.h"

#include <gtest/gtest.h>

#include <string>

namespace ordo {
namespace {

TEST(NamesTest, AcceptsTheDocumentedAlphabet) {
  for (const char* ok : {"a", "nightly-backup", "svc:db.migrate_v2", "A.b-C_d:9",
                         "x.", "0"}) {
    EXPECT_TRUE(ValidateName(ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateName(std::string(128, 'n')).ok());
}

TEST(NamesTest, RefusesEverythingElseWithAMessage) {
  struct Case {
    std::string name;
    std::string says;
  };
  const Case cases[] = {
      {"", "empty"},
      {std::string(129, 'n'), "129 bytes"},
      {".hidden", "starts with '.'"},
      {"..", "starts with '.'"},
      {"../x", "starts with '.'"},
      {"/abs", "'/'"},
      {"a/b", "'/'"},
      {std::string("a\0b", 3), "byte 0x00"},
      {"caf\xc3\xa9", "byte 0xc3"},
      {"a b", "byte 0x20"},
      {"a%2Fb", "'%'"},
  };
  for (const auto& c : cases) {
    Status s = ValidateName(c.name, "lock name");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("lock name"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace ordo
