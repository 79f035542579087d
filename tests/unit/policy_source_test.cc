// The watched policy file: reload on change, last good policy kept on a bad edit.
#include "authbypass/policy_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace authbypass {
namespace {

const char kGood[] = "version: 1\nrules:\n  - id: a\n    match: {hosts: [a.test]}\n";
const char kGood2[] = "version: 1\nrules:\n  - id: b\n    match: {hosts: [b.test]}\n";

class PolicySourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/authbypass-src-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/policy.yaml";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    std::remove((path_ + ".new").c_str());
    rmdir(dir_.c_str());
  }
  void write(const std::string& text) {
    // Like an editor or config management: write aside, rename over.
    std::ofstream(path_ + ".new") << text;
    std::rename((path_ + ".new").c_str(), path_.c_str());
  }
  std::string dir_, path_;
};

using Kind = PolicySource::Outcome::Kind;

TEST_F(PolicySourceTest, LoadsReloadsAndKeepsTheLastGood) {
  write(kGood);
  PolicySource src(path_, std::chrono::milliseconds(0));
  EXPECT_EQ(src.current(), nullptr);
  ASSERT_EQ(src.reload().kind, Kind::kLoaded);
  ASSERT_NE(src.current()->find_rule("a"), nullptr);
  auto t = std::chrono::steady_clock::now();
  EXPECT_EQ(src.check(t).kind, Kind::kUnchanged);  // same file: not even parsed

  write(kGood2);
  EXPECT_EQ(src.check(t += std::chrono::seconds(1)).kind, Kind::kLoaded);
  EXPECT_NE(src.current()->find_rule("b"), nullptr);

  write("version: 1\nrules: [\n");
  auto o = src.check(t += std::chrono::seconds(1));
  EXPECT_EQ(o.kind, Kind::kRejected);
  ASSERT_FALSE(o.errors.empty());
  EXPECT_NE(o.errors[0].find(path_ + ":3:1: not valid YAML"), std::string::npos) << o.errors[0];
  EXPECT_NE(src.current()->find_rule("b"), nullptr);                          // last good stays
  EXPECT_EQ(src.check(t += std::chrono::seconds(1)).kind, Kind::kUnchanged);  // reported once

  std::remove(path_.c_str());
  EXPECT_EQ(src.check(t += std::chrono::seconds(1)).kind, Kind::kRejected);
  EXPECT_NE(src.current()->find_rule("b"), nullptr);
  write(kGood);
  EXPECT_EQ(src.check(t += std::chrono::seconds(1)).kind, Kind::kLoaded);
  EXPECT_NE(src.current()->find_rule("a"), nullptr);
}

TEST_F(PolicySourceTest, MessagesSayWhatIsInForce) {
  PolicySource src(path_);
  write("version: 1\nrules: [\n");
  auto bad = src.reload();
  ASSERT_EQ(bad.kind, Kind::kRejected);
  auto m = src.messages(bad, "no valid policy");
  ASSERT_EQ(m.size(), bad.errors.size() + 1);
  EXPECT_EQ(m.front(), bad.errors.front());
  EXPECT_EQ(m.back(), "no valid policy");

  write(kGood);
  auto ok = src.reload();
  ASSERT_EQ(ok.kind, Kind::kLoaded);
  m = src.messages(ok, "unused");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], "policy " + path_ + " loaded (1 rules, sha256 " +
                      src.current()->sha256().substr(0, 12) + ")");

  write("version: 1\nrules: [\n");
  bad = src.reload();
  m = src.messages(bad, "unused");
  EXPECT_EQ(m.back(), "policy not reloaded: the last good policy (sha256 " +
                          src.current()->sha256().substr(0, 12) + ") stays in force");
  EXPECT_TRUE(src.messages(PolicySource::Outcome{}, "unused").empty());
}

TEST_F(PolicySourceTest, LooksAtTheFileAtMostOncePerInterval) {
  write(kGood);
  PolicySource src(path_, std::chrono::seconds(1));
  ASSERT_EQ(src.reload().kind, Kind::kLoaded);
  auto t = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  EXPECT_EQ(src.check(t).kind, Kind::kUnchanged);
  write(kGood2);
  EXPECT_EQ(src.check(t + std::chrono::milliseconds(500)).kind, Kind::kUnchanged);  // too soon
  EXPECT_EQ(src.check(t + std::chrono::milliseconds(1000)).kind, Kind::kLoaded);
}

TEST_F(PolicySourceTest, MissingAtStartMeansNoPolicy) {
  PolicySource src(path_);
  auto o = src.reload();
  EXPECT_EQ(o.kind, Kind::kRejected);
  EXPECT_EQ(src.current(), nullptr);
}

}  // namespace
}  // namespace authbypass
