// Regex wrapper: anchors, the literal-prefix shortcut (must never change an answer), faults.
#include "compiled_regex.h"

#include <gtest/gtest.h>

#include <string>

namespace authbypass {
namespace {

std::shared_ptr<const Regex> re(const std::string& p) {
  std::string err;
  auto r = Regex::compile(p, &err);
  EXPECT_TRUE(r) << p << ": " << err;
  return r;
}

TEST(CompiledRegex, RequiredPrefixIsTheLeadingLiteral) {
  EXPECT_EQ(re("^Microsoft-CryptoAPI/(6\\.[0-3]|10\\.0)$")->required_prefix(),
            "microsoft-cryptoapi/");
  EXPECT_EQ(re("^/pki/[^/]+\\.crl$")->required_prefix(), "/pki/");
  EXPECT_EQ(re("^abc?d")->required_prefix(), "ab");  // c is optional
  EXPECT_EQ(re("^abc*")->required_prefix(), "ab");
  EXPECT_EQ(re("^abc{0,2}")->required_prefix(), "ab");
  EXPECT_EQ(re("^abc+")->required_prefix(), "abc");
  EXPECT_EQ(re("^abc|xyz")->required_prefix(), "");  // top-level alternation
  EXPECT_EQ(re("^a[|]b")->required_prefix(), "a");   // '|' in brackets is not one
  EXPECT_EQ(re("(?i)abc")->required_prefix(), "");
  EXPECT_EQ(re("^\\Qa.b\\E")->required_prefix(), "");
}

// Every (pattern, subject) pair answers as Boost alone would (checked against a regex
// compiled without the shortcut: a pattern wrapped in a group has no literal prefix).
TEST(CompiledRegex, ShortcutNeverChangesAnAnswer) {
  const char* patterns[] = {"^Microsoft-CryptoAPI/(6\\.[0-3]|10\\.0)$",
                            "^abc?d",
                            "^ab+c",
                            "^/pki/[^/]+\\.crl$",
                            "^abc|xyz",
                            "^a[|]b",
                            "^ab{0}c",
                            "MSOIDCRL",
                            "^x*y"};
  const char* subjects[] = {"Microsoft-CryptoAPI/10.0",
                            "microsoft-cryptoapi/6.1",
                            "Mozilla/5.0 Microsoft-CryptoAPI/10.0",
                            "abd",
                            "abcd",
                            "ABCD",
                            "ac",
                            "abbbc",
                            "/PKI/x.crl",
                            "/pki/a/b.crl",
                            "xyz",
                            "qxyz",
                            "a|b",
                            "ac",
                            "y",
                            "xxy",
                            "",
                            "MSOIDCRL 7.0"};
  for (const char* p : patterns) {
    auto fast = re(p);
    auto plain = re(std::string("(?:") + p + ")");
    ASSERT_EQ(plain->required_prefix(), "");
    for (const char* s : subjects) {
      EXPECT_EQ(fast->search(s), plain->search(s)) << p << " search " << s;
      EXPECT_EQ(fast->full_match(s), plain->full_match(s)) << p << " full " << s;
    }
  }
}

TEST(CompiledRegex, AnchorsAreSubjectAnchorsNotLineAnchors) {
  auto r = re("^Microsoft-CryptoAPI/10\\.0$");
  EXPECT_EQ(r->search("Microsoft-CryptoAPI/10.0"), Regex::Result::kMatch);
  EXPECT_EQ(re("(?:^Microsoft-CryptoAPI/10\\.0$)")->search("x\nMicrosoft-CryptoAPI/10.0"),
            Regex::Result::kNoMatch);
}

TEST(CompiledRegex, LongSubjectIsAFault) {
  EXPECT_EQ(re("a")->search(std::string(kMaxRegexSubject + 1, 'a')), Regex::Result::kFault);
}

}  // namespace
}  // namespace authbypass
