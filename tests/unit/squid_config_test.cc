// `squid-config`: the prefilter derived from a policy.
#include "authbypass/squid_config.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace authbypass {
namespace {

SquidConfig generate(const std::string& rules, SquidConfigOptions o = {}) {
  LoadResult r = load_policy_text("version: 1\nrules:\n" + rules, "p.yaml");
  EXPECT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  return squid_config(*r.policy, o);
}

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  }
  return out;
}

TEST(SquidConfig, RuleCriteriaBecomeOneAllOfLine) {
  auto cfg = generate(
      "  - id: crl\n    match: {hosts: [crl.example.com, .ca.test, sub.ca.test, 192.0.2.0/24],"
      " path_suffix: [.crl], user_agent: [Microsoft CryptoAPI]}\n");
  const std::string& t = cfg.text;
  EXPECT_NE(t.find("acl ab_crl_names dstdomain .ca.test crl.example.com\n"), std::string::npos)
      << t;
  EXPECT_NE(t.find("acl ab_crl_ips dst -n 192.0.2.0/24\n"), std::string::npos) << t;
  EXPECT_NE(t.find("acl ab_crl_hosts any-of ab_crl_names ab_crl_ips\n"), std::string::npos);
  EXPECT_NE(t.find("acl ab_crl_method method GET HEAD\n"), std::string::npos);
  EXPECT_NE(t.find("acl ab_crl_port port 80\n"), std::string::npos);
  EXPECT_NE(t.find("acl ab_crl_path urlpath_regex -i \\.crl\n"), std::string::npos);
  EXPECT_NE(t.find("acl ab_crl_ua browser -i microsoft[[:space:]]cryptoapi\n"), std::string::npos)
      << t;
  // Squid ORs repeated all-of lines: a rule's all-of must be exactly one line.
  auto all_of = lines_starting(t, "acl ab_crl all-of");
  ASSERT_EQ(all_of.size(), 1u);
  EXPECT_EQ(all_of[0],
            "acl ab_crl all-of ab_crl_hosts ab_crl_method ab_crl_port ab_crl_path ab_crl_ua");
  EXPECT_NE(t.find("http_access allow authbypass_candidates authbypass\n"), std::string::npos);
  EXPECT_TRUE(cfg.warnings.empty());
}

TEST(SquidConfig, ManyRulesStayAllOfOneLineEach) {
  std::string rules;
  for (int i = 0; i < 30; ++i) {
    rules += "  - id: rule-with-a-rather-long-name-" + std::to_string(i) +
             "\n    match: {hosts: [h" + std::to_string(i) + ".test], path_prefix: [/pki/]}\n";
  }
  auto cfg = generate(rules);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(lines_starting(cfg.text,
                             "acl ab_rule-with-a-rather-long-name-" + std::to_string(i) + " all-of")
                  .size(),
              1u);
  }
  EXPECT_GE(lines_starting(cfg.text, "acl authbypass_candidates any-of").size(),
            2u);  // wrapped: ORed, fine
}

TEST(SquidConfig, RegexUserAgentsOnlyThroughTheirLiteralStart) {
  auto cfg = generate(
      "  - id: cryptoapi\n    mode: shadow\n    match: {user_agent_regex: "
      "['^Microsoft-CryptoAPI/(6|10)']}\n"
      "  - id: anything\n    match: {user_agent_regex: ['(a|b)c'], methods: [GET]}\n");
  EXPECT_NE(cfg.text.find("acl ab_cryptoapi_ua browser -i ^microsoft-cryptoapi/\n"),
            std::string::npos)
      << cfg.text;
  EXPECT_EQ(cfg.text.find("ab_anything_ua"), std::string::npos);
  ASSERT_EQ(cfg.warnings.size(), 1u);
  EXPECT_NE(cfg.warnings[0].find("rule 'anything'"), std::string::npos);
}

TEST(SquidConfig, OptionsAndNoIcap) {
  SquidConfigOptions o;
  o.helper = "/opt/h";
  o.policy_path = "/etc/p.yaml";
  o.audit_log.clear();
  o.icap_url.clear();
  auto cfg = generate("  - id: a\n    match: {hosts: [a.test]}\n", o);
  EXPECT_NE(cfg.text.find(" /opt/h --policy /etc/p.yaml\n"), std::string::npos) << cfg.text;
  EXPECT_EQ(cfg.text.find("icap_service"), std::string::npos);
  EXPECT_NE(cfg.text.find("children-startup=0"), std::string::npos);
  EXPECT_NE(cfg.text.find("%SRC %METHOD %#URI %#>ha{User-Agent}"), std::string::npos);
  EXPECT_EQ(cfg.text.find("%LOGIN"), std::string::npos);
}

// The ICAP section: a connection budget per service line that the shipped c-icap include
// has threads for (10 + 30 connections + 2 OPTIONS < 50 threads), overload queued, and
// failed transactions never suspending the essential service.
TEST(SquidConfig, IcapConnectionBudgetAndNoSuspension) {
  auto cfg = generate("  - id: a\n    match: {hosts: [a.test]}\n    verify: crl\n");
  EXPECT_NE(cfg.text.find("\nicap_service authbypass_req reqmod_precache bypass=0 max-conn=10 "
                          "on-overload=wait icap://127.0.0.1:1344/authbypass\n"),
            std::string::npos)
      << cfg.text;
  EXPECT_NE(cfg.text.find("\nicap_service authbypass_resp respmod_precache bypass=0 max-conn=30 "
                          "on-overload=wait icap://127.0.0.1:1344/authbypass\n"),
            std::string::npos);
  EXPECT_NE(cfg.text.find("\nicap_service_failure_limit -1\n"), std::string::npos);
}

}  // namespace
}  // namespace authbypass
