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
  EXPECT_NE(t.find("acl ab_crl_names dstdomain -n .ca.test crl.example.com\n"), std::string::npos)
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
  EXPECT_NE(t.find("http_access allow authbypass_candidates !authbypass_range authbypass "
                   "authbypass_noted\n"),
            std::string::npos);
  EXPECT_TRUE(cfg.warnings.empty());
}

// Every line of `text` that defines or uses an ACL type that can make Squid wait for
// DNS: dstdomain / dstdom_regex / dst without -n, srcdomain, srcdom_regex.
std::vector<std::string> lookup_acls(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string acl, name, type, flag;
    words >> acl >> name >> type >> flag;
    if (acl != "acl") continue;
    if (type == "srcdomain" || type == "srcdom_regex") out.push_back(line);
    if ((type == "dstdomain" || type == "dstdom_regex" || type == "dst") && flag != "-n")
      out.push_back(line);
  }
  return out;
}

TEST(SquidConfig, NoAclMakesSquidLookUpNamesOrAddresses) {
  const std::string rules =
      "  - id: crl\n    match: {hosts: [crl.example.com, .ca.test, 192.0.2.0/24, 2001:db8::/32],"
      " path_suffix: [.crl], src: [10.0.0.0/8]}\n"
      "  - id: names\n    match: {hosts: [ocsp.example.com]}\n"
      "  - id: ips\n    match: {hosts: [198.51.100.7]}\n";
  SquidConfigOptions icap;
  icap.mode = SquidConfigMode::kIcap;
  icap.secret = std::string(64, 'a');
  for (const SquidConfig& cfg : {generate(rules), generate(rules, icap)}) {
    EXPECT_TRUE(lookup_acls(cfg.text).empty()) << ::testing::PrintToString(lookup_acls(cfg.text));
    EXPECT_NE(cfg.text.find("acl ab_names_hosts dstdomain -n ocsp.example.com\n"),
              std::string::npos)
        << cfg.text;
    EXPECT_NE(cfg.text.find("acl ab_ips_hosts dst -n 198.51.100.7/32\n"), std::string::npos)
        << cfg.text;
  }
}

// Position of the first line that is exactly `line` (npos if none).
std::size_t line_at(const std::string& text, const std::string& line) {
  std::size_t pos = 0;
  while ((pos = text.find(line + "\n", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return pos;
    ++pos;
  }
  return std::string::npos;
}

TEST(SquidConfig, CandidatesNeverUseSquidsCacheAndRangesNeverBypass) {
  auto cfg = generate("  - id: crl\n    match: {path_suffix: [.crl]}\n    verify: crl\n");
  const std::string& t = cfg.text;
  const std::size_t cand = line_at(t, "acl authbypass_candidates any-of ab_crl");
  const std::size_t range =
      line_at(t,
              "acl authbypass_range any-of authbypass_hdr_range authbypass_hdr_request_range "
              "authbypass_hdr_if_range");
  const std::size_t urls = line_at(t, "acl authbypass_candidate_urls any-of ab_crl_path");
  const std::size_t deny = line_at(t, "cache deny authbypass_candidate_urls");
  // Squid skips `cache` rules for a request it deems uncacheable (no-store) but still
  // serves it a hit: send_hit denies that.
  EXPECT_GT(line_at(t, "send_hit deny authbypass_candidate_urls"), urls) << t;
  ASSERT_NE(urls, std::string::npos) << t;
  EXPECT_LT(urls, deny);
  const std::size_t allow =
      line_at(t, "http_access allow authbypass_candidates !authbypass_range authbypass "
                 "authbypass_noted");
  for (const char* h : {"acl authbypass_hdr_range req_header Range .",
                        "acl authbypass_hdr_request_range req_header Request-Range .",
                        "acl authbypass_hdr_if_range req_header If-Range ."})
    EXPECT_LT(line_at(t, h), range) << h << "\n" << t;
  ASSERT_NE(cand, std::string::npos) << t;
  ASSERT_NE(range, std::string::npos) << t;
  ASSERT_NE(deny, std::string::npos) << t;
  ASSERT_NE(allow, std::string::npos) << t;
  EXPECT_LT(cand, deny);  // ACLs are defined before use
  EXPECT_LT(range, allow);
  // The only http_access line that allows without authentication carries the guard.
  EXPECT_EQ(lines_starting(t, "http_access allow").size(), 1u) << t;
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
  ASSERT_EQ(cfg.warnings.size(), 2u);
  EXPECT_NE(cfg.warnings[0].find("rule 'anything'"), std::string::npos);
  // 'anything' can bypass any URL: Squid's cache keeps nothing.
  EXPECT_NE(cfg.warnings[1].find("Squid's cache is off for every URL"), std::string::npos);
  EXPECT_NE(line_at(cfg.text, "acl authbypass_candidate_urls any-of all"), std::string::npos);
}

// Squid's cache keeps nothing for a URL a rule could bypass, whatever the User-Agent,
// client, method or port of the request that fetched it: an answer stored for a browser
// (not a candidate when the rule wants CryptoAPI's User-Agent) would otherwise be served
// to a bypassed request that Squid deems uncacheable (no-store, a Host header other than
// the URL's), a negatively cached one even past send_hit. Shadow rules never bypass.
TEST(SquidConfig, NothingIsCachedForACandidateUrlWhoeverAsks) {
  auto cfg = generate(
      "  - id: crl\n    match: {path_suffix: [.crl], user_agent_regex: ['^Microsoft-CryptoAPI/'],"
      " src: [10.0.0.0/8]}\n    verify: crl\n"
      "  - id: pki\n    match: {hosts: [www.example.com], path_prefix: [/pki/], methods: [GET]}\n"
      "  - id: ocsp\n    match: {hosts: [ocsp.example.com], methods: [POST]}\n"
      "  - id: watch\n    mode: shadow\n    match: {user_agent: [curl]}\n");
  const std::string& t = cfg.text;
  EXPECT_NE(line_at(t, "acl ab_pki_url all-of ab_pki_hosts ab_pki_path"), std::string::npos) << t;
  EXPECT_NE(line_at(t, "acl authbypass_candidate_urls any-of ab_crl_path ab_pki_url ab_ocsp_hosts"),
            std::string::npos)
      << t;
  EXPECT_NE(line_at(t, "cache deny authbypass_candidate_urls"), std::string::npos) << t;
  EXPECT_NE(line_at(t, "send_hit deny authbypass_candidate_urls"), std::string::npos) << t;
  EXPECT_TRUE(cfg.warnings.empty()) << cfg.warnings.front();
}

// The ICAP services get what the bypass let through, by the note the bypass line writes:
// never by the helper's ACL again (a second lookup may answer ERR after a policy reload,
// and the response would then skip the check).
TEST(SquidConfig, IcapGoesByTheBypassNoteNeverASecondLookup) {
  SquidConfigOptions o;
  o.icap_url = "icap://127.0.0.1:1344/authbypass";
  auto cfg = generate("  - id: a\n    match: {hosts: [a.test]}\n", o);
  const std::string& t = cfg.text;
  EXPECT_EQ(lines_starting(t, "acl authbypass_noted ")[0],
            "acl authbypass_noted annotate_transaction authbypass=bypassed");
  EXPECT_EQ(lines_starting(t, "acl authbypass_bypassed ")[0],
            "acl authbypass_bypassed note authbypass bypassed");
  // The note is written last on the bypass line: only when candidates and helper matched.
  EXPECT_EQ(lines_starting(t, "http_access ")[0],
            "http_access allow authbypass_candidates !authbypass_range authbypass "
            "authbypass_noted");
  auto adapt = lines_starting(t, "adaptation_access ");
  ASSERT_EQ(adapt.size(), 4u);
  for (const std::string& l : adapt) {
    EXPECT_TRUE(l.ends_with(" allow authbypass_bypassed") || l.ends_with(" deny all")) << l;
    EXPECT_EQ(l.find(" authbypass "), std::string::npos) << l;
  }
  EXPECT_LT(t.find("acl authbypass_bypassed"), t.find("adaptation_access"));
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
  // No rule with verify: nothing to warn about.
  EXPECT_EQ(cfg.text.find("NO ICAP SERVICE"), std::string::npos);
  EXPECT_TRUE(cfg.warnings.empty());
}

// Without the ICAP lines, every rule with verify is named, in the text and as a warning,
// with what it then delivers unchecked.
TEST(SquidConfig, NoIcapNamesTheRulesItLeavesUnprotected) {
  SquidConfigOptions o;
  o.icap_url.clear();
  auto cfg = generate(
      "  - id: crl-files\n    match: {path_suffix: [.crl]}\n    verify: crl\n"
      "  - id: plain\n    match: {hosts: [a.test]}\n",
      o);
  EXPECT_NE(cfg.text.find("# NO ICAP SERVICE (--no-icap): nothing checks what comes back "
                          "through the hole.\n"),
            std::string::npos)
      << cfg.text;
  EXPECT_NE(cfg.text.find("#   rule 'crl-files': verify: crl is not enforced without the ICAP "
                          "service: whatever the origin answers (any host, GET, HEAD on port 80, "
                          "paths ending in .crl) reaches clients without credentials unchecked, "
                          "a program included\n"),
            std::string::npos)
      << cfg.text;
  EXPECT_EQ(cfg.text.find("rule 'plain'"), std::string::npos) << cfg.text;
  ASSERT_EQ(cfg.warnings.size(), 1u);
  EXPECT_EQ(cfg.warnings[0].rfind("rule 'crl-files': verify: crl is not enforced", 0), 0u);
  // With the ICAP lines: no such block.
  SquidConfigOptions with_icap;
  auto full =
      generate("  - id: crl-files\n    match: {path_suffix: [.crl]}\n    verify: crl\n", with_icap);
  EXPECT_EQ(full.text.find("NO ICAP SERVICE"), std::string::npos);
  EXPECT_TRUE(full.warnings.empty());
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
