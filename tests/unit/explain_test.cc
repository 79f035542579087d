// `explain`: which criterion failed, in words, for the nearest rules.
#include <gtest/gtest.h>

#include "authbypass/explain.h"

namespace authbypass {
namespace {

const Date kToday = *parse_date("2026-11-25");

class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoadResult r = load_policy_text(R"(version: 1
rules:
  - id: ca
    match: {hosts: [.verisign.com], path_suffix: [.crl]}
  - id: ocsp
    match: {hosts: [ocsp.digicert.com], methods: [GET, POST]}
  - id: old
    expires: 2026-01-01
    match: {hosts: [old.example]}
)",
                                    "p.yaml");
    ASSERT_TRUE(r.ok());
    policy_ = r.policy;
  }
  Explanation run(std::string_view method, std::string_view url) {
    EXPECT_TRUE(req_.parse(RequestInput{method, url, "", "10.0.0.1"})) << req_.error();
    return explain(*policy_, req_, kToday);
  }
  const CriterionCheck* check(const Explanation& ex, std::string_view rule, std::string_view c) {
    for (const auto& re : ex.rules)
      if (re.rule->id == rule)
        for (const auto& ch : re.checks)
          if (ch.criterion == c) return &ch;
    return nullptr;
  }
  std::shared_ptr<const Policy> policy_;
  Request req_;
};

TEST_F(ExplainTest, BypassNamesTheRuleAndNearestFailures) {
  Explanation ex = run("GET", "http://crl.verisign.com/pca3.crl");
  ASSERT_TRUE(ex.decision.bypass());
  EXPECT_EQ(ex.decision.rule->id, "ca");
  auto near = ex.nearest(3);
  ASSERT_EQ(near.size(), 2u);
  EXPECT_EQ(near[0]->rule->id, "ocsp");
  EXPECT_EQ(near[0]->failed(), 1);
  const CriterionCheck* host = check(ex, "ocsp", "host");
  ASSERT_NE(host, nullptr);
  EXPECT_FALSE(host->ok);
  EXPECT_EQ(host->detail, "host crl.verisign.com is not in hosts [ocsp.digicert.com]");
}

TEST_F(ExplainTest, SaysWhichCriterionFailed) {
  Explanation ex = run("POST", "http://crl.verisign.com/x.exe?y=.crl");
  EXPECT_FALSE(ex.decision.bypass());
  const CriterionCheck* m = check(ex, "ca", "method");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->detail,
            "method POST is not allowed; this rule allows GET, HEAD, the default when 'methods' "
            "is absent");
  const CriterionCheck* p = check(ex, "ca", "path");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->detail,
            "path '/x.exe' does not match path_suffix [.crl]; the query is never matched");
  // A path that servers may read differently: never matched, with the form named.
  Explanation amb = run("GET", "http://crl.verisign.com/x.crl#/../x.exe");
  EXPECT_FALSE(amb.decision.bypass());
  const CriterionCheck* a = check(amb, "ca", "path");
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->ok);
  EXPECT_EQ(a->detail,
            "path '/x.crl#/../x.exe' is never matched: the URL has a fragment ('#'), which Squid "
            "forwards to the origin (a path that readers may resolve differently never matches "
            "path_* criteria)");
  const CriterionCheck* h = check(ex, "ca", "host");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->ok);
  EXPECT_EQ(h->detail, "host crl.verisign.com matches '.verisign.com'");
}

TEST_F(ExplainTest, ExpiredAndPortAndConnect) {
  Explanation ex = run("GET", "http://old.example:8080/");
  const CriterionCheck* a = check(ex, "old", "active");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->detail, "rule expired on 2026-01-01");
  const CriterionCheck* port = check(ex, "old", "port");
  ASSERT_NE(port, nullptr);
  EXPECT_EQ(port->detail,
            "port 8080 is not allowed; this rule allows 80, the default when 'ports' is absent");
  ex = run("CONNECT", "crl.verisign.com:443");
  const CriterionCheck* p = check(ex, "ca", "path");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->detail, "a CONNECT request has no path (it opens a tunnel to crl.verisign.com:443)");
}

TEST_F(ExplainTest, ExplanationAgreesWithDecision) {
  for (auto [m, u] : {std::pair{"GET", "http://crl.verisign.com/a.crl"},
                      std::pair{"POST", "http://ocsp.digicert.com/"},
                      std::pair{"GET", "http://old.example/"},
                      std::pair{"GET", "http://evil.test/a.crl"}}) {
    Explanation ex = run(m, u);
    bool any_enforce_match = false;
    for (const auto& re : ex.rules)
      any_enforce_match = any_enforce_match || (re.matched && re.rule->mode == Mode::kEnforce);
    EXPECT_EQ(any_enforce_match, ex.decision.bypass()) << u;
  }
}

}  // namespace
}  // namespace authbypass
