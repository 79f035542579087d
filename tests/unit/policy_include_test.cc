// `include:`: policy files composed of parts (a generated part beside the hand-edited one).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "authbypass/policy.h"
#include "authbypass/policy_source.h"

namespace authbypass {
namespace {

class PolicyInclude : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/authbypass-include-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(::mkdir((dir_ + "/parts").c_str(), 0755), 0);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path + ".tmp") << text;
    std::rename((path + ".tmp").c_str(), path.c_str());
    return path;
  }
  std::string dir_;
};

TEST_F(PolicyInclude, RulesAndTestsOfIncludedFilesFollowInOrder) {
  write("parts/m365.yaml",
        "version: 1\nrules:\n  - id: m365-84\n    match: {hosts: [.digicert.com]}\n"
        "tests:\n  - name: from the part\n    request: {url: 'http://crl3.digicert.com/x.crl'}\n"
        "    expect: bypass\n    rule: m365-84\n");
  write("parts/more.yaml", "version: 1\ninclude: [m365b.yaml]\n");
  write("parts/m365b.yaml", "version: 1\nrules:\n  - id: b\n    match: {hosts: [b.test]}\n");
  std::string main = write("policy.yaml",
                           "version: 1\ninclude: [parts/m365.yaml, parts/more.yaml]\nrules:\n"
                           "  - id: crl\n    match: {hosts: [crl.example.com]}\n");
  LoadResult r = load_policy_file(main);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  const auto& rules = r.policy->rules();
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].id, "crl");
  EXPECT_EQ(rules[1].id, "m365-84");
  EXPECT_EQ(rules[2].id, "b");
  EXPECT_EQ(rules[1].where.to_string(), dir_ + "/parts/m365.yaml:3:5");
  EXPECT_EQ(rules[2].where.file, dir_ + "/parts/m365b.yaml");  // relative to its includer
  ASSERT_EQ(r.policy->files().size(), 4u);
  EXPECT_EQ(r.policy->files()[0], main);
  EXPECT_EQ(r.policy->tests().size(), 1u);
  EXPECT_EQ(r.policy->tests()[0].where.file, dir_ + "/parts/m365.yaml");
  Request req;
  ASSERT_TRUE(req.parse({"GET", "http://crl3.digicert.com/DigiCertCA.crl", "", ""}));
  Decision d = r.policy->decide(req, today_utc());
  ASSERT_TRUE(d.bypass());
  EXPECT_EQ(d.rule->id, "m365-84");
  // The hash covers every file: editing a part changes it.
  std::string before = r.policy->sha256();
  write("parts/m365b.yaml", "version: 1\nrules:\n  - id: b\n    match: {hosts: [c.test]}\n");
  EXPECT_NE(load_policy_file(main).policy->sha256(), before);
}

TEST_F(PolicyInclude, ErrorsNameTheIncludedFile) {
  write("parts/bad.yaml", "version: 1\nrules:\n  - id: x\n    match: {hosts: ['*.evil.test']}\n");
  write("parts/dup.yaml", "version: 1\nrules:\n  - id: crl\n    match: {hosts: [d.test]}\n");
  std::string main = write("policy.yaml",
                           "version: 1\ninclude: [parts/bad.yaml, parts/dup.yaml, parts/none.yaml,"
                           " /etc/passwd]\nrules:\n  - id: crl\n    match: {hosts: [a.test]}\n");
  LoadResult r = load_policy_file(main);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 4u) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.errors[0], main + ":2:43: include 'parts/none.yaml': cannot read policy: No such file or directory");
  EXPECT_EQ(r.errors[1], main + ":2:60: include '/etc/passwd': give a path relative to this file");
  EXPECT_EQ(r.errors[2], dir_ + "/parts/bad.yaml:4:21: hosts entry '*.evil.test': write "
                         "'.evil.test' for a domain and all its subdomains");
  EXPECT_EQ(r.errors[3], dir_ + "/parts/dup.yaml:3:9: duplicate rule id 'crl' (first defined at " +
                             main + ":4:9)");
}

TEST_F(PolicyInclude, CyclesAreErrors) {
  write("a.yaml", "version: 1\ninclude: [b.yaml]\nrules:\n  - id: a\n    match: {hosts: [a.test]}\n");
  write("b.yaml", "version: 1\ninclude: [a.yaml]\n");
  LoadResult r = load_policy_file(dir_ + "/a.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(r.errors);
  EXPECT_NE(r.errors[0].find("b.yaml:2:11: include 'a.yaml' makes a cycle: "), std::string::npos)
      << r.errors[0];
  write("self.yaml", "version: 1\ninclude: [self.yaml]\nrules: []\n");
  EXPECT_FALSE(load_policy_file(dir_ + "/self.yaml").ok());
}

TEST_F(PolicyInclude, PolicySourceReloadsWhenAnIncludedFileChanges) {
  write("part.yaml", "version: 1\nrules:\n  - id: p\n    match: {hosts: [one.test]}\n");
  std::string main = write("policy.yaml", "version: 1\ninclude: [part.yaml]\nrules: []\n");
  PolicySource src(main, std::chrono::milliseconds(0));
  ASSERT_EQ(src.reload().kind, PolicySource::Outcome::Kind::kLoaded);
  auto t = std::chrono::steady_clock::now();
  EXPECT_EQ(src.check(t).kind, PolicySource::Outcome::Kind::kUnchanged);
  write("part.yaml", "version: 1\nrules:\n  - id: p\n    match: {hosts: [two.test]}\n");
  EXPECT_EQ(src.check(t + std::chrono::seconds(1)).kind, PolicySource::Outcome::Kind::kLoaded);
  EXPECT_EQ(src.current()->rules()[0].match.hosts[0].name, "two.test");
  write("part.yaml", "version: 1\nrules: [\n");
  EXPECT_EQ(src.check(t + std::chrono::seconds(2)).kind, PolicySource::Outcome::Kind::kRejected);
  EXPECT_EQ(src.current()->rules()[0].match.hosts[0].name, "two.test");  // last good stays
}

}  // namespace
}  // namespace authbypass
