// Decision mode (authbypass.Mode decide|both): the X-Authbypass mark, what the REQMOD
// service does with client-sent copies, and the shared-secret file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "authbypass/icap_plan.h"

namespace authbypass::icap {
namespace {

TEST(IcapMark, HeaderNamesMatchCaseInsensitivelyWithBlanksBeforeTheColon) {
  EXPECT_TRUE(is_mark_header("X-Authbypass: abc crl-files"));
  EXPECT_TRUE(is_mark_header("x-authbypass:abc"));
  EXPECT_TRUE(is_mark_header("X-AUTHBYPASS : junk"));
  EXPECT_TRUE(is_mark_header("X-Authbypass\t:"));
  EXPECT_TRUE(is_mark_header("X-Authbypass:"));
  EXPECT_FALSE(is_mark_header("X-Authbypassed: x"));
  EXPECT_FALSE(is_mark_header("X-Authbypas: x"));
  EXPECT_FALSE(is_mark_header(" X-Authbypass: x"));  // a continuation line, not a header
  EXPECT_FALSE(is_mark_header("X-Authbypass"));      // no colon
  EXPECT_FALSE(is_mark_header("X-Forwarded-For: X-Authbypass: x"));
  EXPECT_FALSE(is_mark_header(""));
  EXPECT_EQ(header_name("X-AUTHBYPASS : junk"), "X-AUTHBYPASS ");
  EXPECT_EQ(header_name("Host: a:80"), "Host");
  EXPECT_EQ(header_name("no colon"), "");
}

TEST(IcapMark, TheMarkIsTheSecretABlankAndTheRule) {
  EXPECT_EQ(mark_header("0123abcd", "crl-files"), "X-Authbypass: 0123abcd crl-files");
  EXPECT_TRUE(is_mark_header(mark_header("s", "r")));
}

TEST(IcapMark, ClientSentMarksAreStrippedAndNeverMarked) {
  MarkPlan p = plan_mark(false, false);
  EXPECT_FALSE(p.modified());  // 204
  EXPECT_FALSE(p.forged);
  p = plan_mark(false, true);
  EXPECT_TRUE(p.mark);
  EXPECT_FALSE(p.strip);
  EXPECT_TRUE(p.modified());
  for (bool bypass : {false, true}) {  // whatever the policy says
    p = plan_mark(true, bypass);
    EXPECT_TRUE(p.strip);
    EXPECT_TRUE(p.forged);
    EXPECT_FALSE(p.mark);
    EXPECT_TRUE(p.modified());
  }
}

TEST(IcapSecret, OneTokenOfSafeCharacters) {
  std::string err;
  const std::string hex(64, 'a');
  EXPECT_EQ(parse_shared_secret(hex, &err), hex);
  EXPECT_EQ(parse_shared_secret(hex + "\n", &err), hex);
  EXPECT_EQ(parse_shared_secret(hex + " \r\n", &err), hex);
  const std::string b64url = "Ab-_" + std::string(40, 'Z');
  EXPECT_EQ(parse_shared_secret(b64url, &err), b64url);

  EXPECT_FALSE(parse_shared_secret("", &err));
  EXPECT_EQ(err, "is empty");
  EXPECT_FALSE(parse_shared_secret("\n\n", &err));
  EXPECT_EQ(err, "is empty");
  EXPECT_FALSE(parse_shared_secret(std::string(31, 'a'), &err));
  EXPECT_NE(err.find("at least 32"), std::string::npos) << err;
  EXPECT_FALSE(parse_shared_secret(std::string(257, 'a'), &err));
  // anything that would need escaping in Squid's regex or could split a header
  for (const char* bad : {" ", "\\", ".", "^", "$", "*", "+", "\n", "\r", "=", "/", ":", "\x01"}) {
    std::string s = std::string(20, 'a') + bad + std::string(20, 'b');
    EXPECT_FALSE(parse_shared_secret(s, &err)) << "accepted " << s;
  }
  EXPECT_FALSE(parse_shared_secret(hex + "\n" + hex, &err));  // two lines
  EXPECT_FALSE(parse_shared_secret(" " + hex, &err));         // leading blank
}

TEST(IcapSecret, GeneratedSecretsAreStrongAndValid) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    std::string s = generate_shared_secret();
    ASSERT_EQ(s.size(), 64u);
    EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos) << s;
    EXPECT_EQ(parse_shared_secret(s, nullptr), s);
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 50u);
}

class SecretFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/authbypass-secret-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/secret";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  void write(const std::string& content, mode_t mode) {
    std::remove(path_.c_str());
    std::ofstream(path_) << content;
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
  }
  std::string dir_, path_;
};

TEST_F(SecretFile, ReadWhenPrivate) {
  const std::string s(64, 'f');
  std::string err;
  for (mode_t mode : {0600, 0640, 0400, 0660}) {
    write(s + "\n", mode);
    EXPECT_EQ(read_shared_secret_file(path_, &err), s) << std::oct << mode << " " << err;
  }
}

TEST_F(SecretFile, RefusedWhenWorldReadableEmptyMissingOrBad) {
  std::string err;
  write(std::string(64, 'f'), 0644);
  EXPECT_FALSE(read_shared_secret_file(path_, &err));
  EXPECT_NE(err.find("readable or writable by every user (mode 0644)"), std::string::npos) << err;
  EXPECT_NE(err.find(path_), std::string::npos);
  write(std::string(64, 'f'), 0602);
  EXPECT_FALSE(read_shared_secret_file(path_, &err));
  write("", 0600);
  EXPECT_FALSE(read_shared_secret_file(path_, &err));
  EXPECT_NE(err.find("is empty"), std::string::npos) << err;
  write("short\n", 0600);
  EXPECT_FALSE(read_shared_secret_file(path_, &err));
  EXPECT_NE(err.find("at least 32"), std::string::npos) << err;
  write(std::string(5000, 'a'), 0600);
  EXPECT_FALSE(read_shared_secret_file(path_, &err));
  EXPECT_NE(err.find("over 4 KiB"), std::string::npos) << err;
  EXPECT_FALSE(read_shared_secret_file(dir_ + "/missing", &err));
  EXPECT_NE(err.find("cannot be opened"), std::string::npos) << err;
  EXPECT_FALSE(read_shared_secret_file(dir_, &err));
  EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
}

}  // namespace
}  // namespace authbypass::icap
