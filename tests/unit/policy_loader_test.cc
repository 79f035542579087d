// The YAML loader: all-or-nothing, safe defaults, and the exact error texts admins see.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "authbypass/policy.h"

namespace authbypass {
namespace {

std::vector<std::string> errors_of(const std::string& yaml) {
  LoadResult r = load_policy_text(yaml, "p.yaml");
  EXPECT_FALSE(r.ok()) << "policy unexpectedly loaded";
  return r.errors;
}

std::string one_error(const std::string& yaml) {
  auto e = errors_of(yaml);
  EXPECT_EQ(e.size(), 1u) << ::testing::PrintToString(e);
  return e.empty() ? "" : e.front();
}

const std::string kHead = "version: 1\nrules:\n";

TEST(PolicyLoader, LoadsMinimalPolicyWithSafeDefaults) {
  LoadResult r = load_policy_text(kHead +
                                      "  - id: crl\n"
                                      "    match:\n"
                                      "      path_suffix: [.CRL]\n",
                                  "p.yaml");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  const Rule& rule = r.policy->rules().at(0);
  EXPECT_EQ(rule.id, "crl");
  EXPECT_EQ(rule.mode, Mode::kEnforce);
  EXPECT_EQ(rule.verify, Verify::kNone);
  EXPECT_EQ(rule.match.methods, (std::vector<std::string>{"GET", "HEAD"}));
  EXPECT_TRUE(rule.match.methods_defaulted);
  EXPECT_EQ(rule.match.ports, (std::vector<std::uint16_t>{80}));
  EXPECT_TRUE(rule.match.ports_defaulted);
  EXPECT_EQ(rule.match.path_suffix, (std::vector<std::string>{".crl"}));
  EXPECT_EQ(rule.where.to_string(), "p.yaml:3:5");
  EXPECT_EQ(r.policy->sha256().size(), 64u);
}

TEST(PolicyLoader, ParsesEveryField) {
  LoadResult r = load_policy_text(kHead + R"(  - id: all.fields_1
    description: every key
    owner: secops@example.com
    ticket: SEC-1
    mode: shadow
    expires: 2027-06-30
    verify: revocation
    match:
      methods: [get, POST]
      ports: [80, 8080]
      hosts: [Crl.Example.COM., .digicert.com, 192.0.2.7, 13.107.0.0/16, "2001:db8::/32", bücher.example]
      path_prefix: [/PKI/]
      path_suffix: [.crl]
      path_regex: ['^/pki/[^/]+\.crl$']
      user_agent: [MSOIDCRL]
      user_agent_regex: ['^Microsoft-CryptoAPI/']
      src: [10.0.0.0/8, "2001:db8::/32"]
tests:
  - name: t
    request: {method: POST, url: "http://crl.example.com/pki/a.crl", user_agent: x, src: 10.1.2.3}
    expect: authenticate
    rule: all.fields_1
    shadow: []
    date: 2026-01-01
)",
                                  "p.yaml");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  const Rule& rule = r.policy->rules().at(0);
  EXPECT_EQ(rule.owner, "secops@example.com");
  EXPECT_EQ(rule.ticket, "SEC-1");
  EXPECT_EQ(rule.mode, Mode::kShadow);
  EXPECT_EQ(rule.verify, Verify::kRevocation);
  ASSERT_TRUE(rule.expires);
  EXPECT_EQ(format_date(*rule.expires), "2027-06-30");
  EXPECT_EQ(rule.match.methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_FALSE(rule.match.methods_defaulted);
  EXPECT_EQ(rule.match.ports, (std::vector<std::uint16_t>{80, 8080}));
  ASSERT_EQ(rule.match.hosts.size(), 6u);
  EXPECT_EQ(rule.match.hosts[0].kind, HostPattern::Kind::kExact);
  EXPECT_EQ(rule.match.hosts[0].name, "crl.example.com");
  EXPECT_EQ(rule.match.hosts[1].kind, HostPattern::Kind::kSuffix);
  EXPECT_EQ(rule.match.hosts[1].name, "digicert.com");
  EXPECT_EQ(rule.match.hosts[2].kind, HostPattern::Kind::kCidr);
  EXPECT_EQ(rule.match.hosts[2].cidr.to_string(), "192.0.2.7/32");
  EXPECT_EQ(rule.match.hosts[4].cidr.to_string(), "2001:db8::/32");
  EXPECT_EQ(rule.match.hosts[5].name, "xn--bcher-kva.example");
  EXPECT_EQ(rule.match.path_prefix, (std::vector<std::string>{"/pki/"}));
  EXPECT_EQ(rule.match.user_agent, (std::vector<std::string>{"msoidcrl"}));
  ASSERT_EQ(r.policy->tests().size(), 1u);
  const PolicyTest& t = r.policy->tests()[0];
  EXPECT_EQ(t.method, "POST");
  EXPECT_EQ(t.expect_rule, "all.fields_1");
  ASSERT_TRUE(t.expect_shadow);
  EXPECT_TRUE(t.expect_shadow->empty());
  EXPECT_EQ(format_date(*t.date), "2026-01-01");
}

// Exact messages: an admin's error text must never change silently.
TEST(PolicyLoader, ExactErrorMessages) {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const std::string rule = "  - id: r\n    match:\n";
  const Case cases[] = {
      {"", "p.yaml:1:1: policy is empty (expected 'version: 1' and 'rules:')"},
      {"version: 2\nrules: []\n",
       "p.yaml:1:10: unsupported version '2' (this authbypass reads policy schema version 1)"},
      {"version: '1'\nrules: []\n",
       "p.yaml:1:10: unsupported version '1' (this authbypass reads policy schema version 1)"},
      {"rules: []\n", "p.yaml:1:1: missing 'version: 1'"},
      {"version: 1\n", "p.yaml:1:1: missing 'rules:'"},
      {"version: 1\nrules: {}\n", "p.yaml:2:8: 'rules' must be a list of rules"},
      {"version: 1\nrules: []\nextra: 1\n",
       "p.yaml:3:1: unknown key 'extra' in the policy (allowed: version, rules, tests, include)"},
      {kHead + rule + "      hosts: [a.com]\n    colour: red\n",
       "p.yaml:6:5: unknown key 'colour' in a rule (allowed: id, description, owner, ticket, mode, "
       "expires, match, verify)"},
      {kHead + rule + "      hosts: [a.com]\n      host: [b.com]\n",
       "p.yaml:6:7: unknown key 'host' in match (allowed: methods, ports, hosts, path_prefix, "
       "path_suffix, path_regex, user_agent, user_agent_regex, src)"},
      {kHead + rule + "      hosts: [a.com]\n      hosts: [b.com]\n",
       "p.yaml:6:7: duplicate key 'hosts' in match"},
      {kHead + "  - id: Bad_ID\n    match: {hosts: [a.com]}\n",
       "p.yaml:3:9: bad rule id 'Bad_ID' (use lower-case letters, digits, '.', '_', '-'; start "
       "with a letter or digit; at most 64 characters)"},
      {kHead + "  - match: {hosts: [a.com]}\n", "p.yaml:3:5: rule has no 'id'"},
      {kHead + "  - id: r\n", "p.yaml:3:5: rule 'r' has no 'match'"},
      {kHead + "  - id: r\n    match: {}\n",
       "p.yaml:4:12: rule 'r': empty 'match' would match every request; list at least one "
       "criterion"},
      {kHead + "  - id: r\n    match:\n    verify: crl\n",
       "p.yaml:4:11: rule 'r': empty 'match' would match every request; list at least one "
       "criterion"},
      {kHead + "  - id: r\n    match: {methods: [GET], ports: [80]}\n",
       "p.yaml:4:12: rule 'r': 'match' has only methods/ports, so it would match every host; add "
       "hosts, path_*, user_agent* or src"},
      {kHead + "  - id: r\n    mode: audit\n    match: {hosts: [a.com]}\n",
       "p.yaml:4:11: unknown mode 'audit' (expected enforce or shadow)"},
      {kHead + "  - id: r\n    verify: x509\n    match: {hosts: [a.com]}\n",
       "p.yaml:4:13: unknown verify 'x509' (expected none, crl, ocsp, cert, ctl or revocation)"},
      {kHead + "  - id: r\n    expires: 2027-02-30\n    match: {hosts: [a.com]}\n",
       "p.yaml:4:14: bad date '2027-02-30' (expected YYYY-MM-DD)"},
      {kHead + "  - id: r\n    expires: next week\n    match: {hosts: [a.com]}\n",
       "p.yaml:4:14: bad date 'next week' (expected YYYY-MM-DD)"},
      {kHead + rule + "      hosts: a.com\n",
       "p.yaml:5:14: hosts must be a list, e.g. hosts: [a, b]"},
      {kHead + rule + "      hosts: []\n",
       "p.yaml:5:14: hosts is an empty list: remove the key or list at least one entry"},
      {kHead + rule + "      hosts: [[a.com]]\n",
       "p.yaml:5:15: hosts entry must be a single value, not a list"},
      {kHead + rule + "      hosts: ['*.a.com']\n",
       "p.yaml:5:15: hosts entry '*.a.com': write '.a.com' for a domain and all its subdomains"},
      {kHead + rule + "      hosts: [10.1.2.3/8]\n",
       "p.yaml:5:15: bad CIDR in hosts: '10.1.2.3/8' has bits set past the /8 prefix (did you "
       "mean 10.0.0.0/8?)"},
      {kHead + rule + "      hosts: [10.0.0.0/33]\n",
       "p.yaml:5:15: bad CIDR in hosts: bad prefix length in '10.0.0.0/33' (expected /0../32)"},
      {kHead + rule + "      hosts: [300.1.2.3/8]\n",
       "p.yaml:5:15: bad CIDR in hosts: '300.1.2.3' is not an IP address"},
      {kHead + rule + "      hosts: [3221225991]\n",
       "p.yaml:5:15: hosts entry '3221225991' is a numeric form that never matches; write IPv4 "
       "addresses as four decimal octets (192.0.2.7)"},
      {kHead + rule + "      hosts: ['a.com:80']\n",
       "p.yaml:5:15: hosts entry 'a.com:80' has a port or is not an IP address; use 'ports' for "
       "ports"},
      {kHead + rule + "      hosts: ['a..com']\n",
       "p.yaml:5:15: bad host name 'a..com': host name has an empty label"},
      {kHead + rule + "      hosts: ['[2001:db8::1]']\n",
       "p.yaml:5:15: hosts entry '[2001:db8::1]': write IPv6 addresses without brackets"},
      {kHead + rule + "      src: [10.0.0.0/8, nowhere]\n",
       "p.yaml:5:25: bad CIDR in src: 'nowhere' is not an IP address"},
      {kHead + rule + "      hosts: [a.com]\n      ports: [\"80\"]\n",
       "p.yaml:6:15: bad port '80' (expected an unquoted number 1-65535)"},
      {kHead + rule + "      hosts: [a.com]\n      ports: [0]\n",
       "p.yaml:6:15: bad port '0' (expected an unquoted number 1-65535)"},
      {kHead + rule + "      hosts: [a.com]\n      ports: [65536]\n",
       "p.yaml:6:15: bad port '65536' (expected an unquoted number 1-65535)"},
      {kHead + rule + "      hosts: [a.com]\n      methods: ['GET /']\n",
       "p.yaml:6:17: bad method 'GET /' (expected an HTTP method such as GET)"},
      {kHead + rule + "      path_prefix: [pki/]\n",
       "p.yaml:5:21: path_prefix 'pki/' must start with '/'"},
      {kHead + rule + "      path_suffix: ['.crl?']\n",
       "p.yaml:5:21: path_suffix '.crl?' contains ?, #, ;, %, \\ or a control character: paths "
       "are matched decoded, without query or ;params"},
      {kHead + rule + "      path_regex: ['(a']\n",
       "p.yaml:5:20: bad regular expression '(a': Unmatched marking parenthesis ( or \\(.  The "
       "error occurred while parsing the regular expression: '(a>>>HERE>>>'."},
      {kHead + "  - id: r\n    match: {hosts: [a.com]}\n  - id: r\n    match: {hosts: [b.com]}\n",
       "p.yaml:5:9: duplicate rule id 'r' (first defined at p.yaml:3:9)"},
      {kHead + "  - id: r\n    match: {hosts: [a.com]}\ntests:\n  - name: t\n"
               "    request: {url: 'http://a.com/'}\n    expect: maybe\n",
       "p.yaml:8:13: unknown expect 'maybe' (expected bypass or authenticate)"},
      {kHead + "  - id: r\n    match: {hosts: [a.com]}\ntests:\n  - name: t\n"
               "    request: {url: 'http://a.com/'}\n    expect: bypass\n    rule: nope\n",
       "p.yaml:9:11: test 't' names unknown rule 'nope'"},
      {kHead + "  - id: r\n    match: {hosts: [a.com]}\ntests:\n  - name: t\n"
               "    request: {method: GET}\n    expect: bypass\n",
       "p.yaml:7:14: test 't': request has no 'url'"},
      {"version: 1\nrules: [\n", "p.yaml:3:1: not valid YAML: did not find expected node content while parsing a flow node"},
      {"version: 1\n---\nversion: 1\n",
       "p.yaml:3:1: policy file holds more than one YAML document"},
      {std::string("version: 1\nrules: []\n# \0\n", 24),
       "p.yaml:3:1: policy file contains a NUL byte; it must be a YAML text file"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_EQ(one_error(c.yaml), c.error);
  }
}

TEST(PolicyLoader, AllOrNothingAndReportsEveryError) {
  auto e = errors_of(kHead +
                     "  - id: good\n    match: {hosts: [a.com]}\n"
                     "  - id: bad\n    match: {hosts: ['*.b.com'], ports: [x]}\n"
                     "    mode: sometimes\n");
  ASSERT_EQ(e.size(), 3u) << ::testing::PrintToString(e);
  // Sorted by position in the file.
  EXPECT_EQ(e[0], "p.yaml:6:21: hosts entry '*.b.com': write '.b.com' for a domain and all its "
                  "subdomains");
  EXPECT_EQ(e[1], "p.yaml:6:41: bad port 'x' (expected an unquoted number 1-65535)");
  EXPECT_EQ(e[2], "p.yaml:7:11: unknown mode 'sometimes' (expected enforce or shadow)");
}

TEST(PolicyLoader, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "version: 1\nrules: " + std::string(10000, '[') + std::string(10000, ']');
  auto e = one_error(deep);
  EXPECT_NE(e.find("YAML nested too deeply"), std::string::npos) << e;
  std::string block = "version: 1\nrules:\n";
  for (int i = 0; i < 2000; ++i) block += std::string(2 * i + 2, ' ') + "- \n";
  EXPECT_FALSE(load_policy_text(block, "p.yaml").ok());
}

TEST(PolicyLoader, AliasesResolveToTheAnchoredList) {
  LoadResult r = load_policy_text(kHead +
                                      "  - id: a\n    match: {hosts: &ca [crl.example.com, .ca.test]}\n"
                                      "  - id: b\n    match: {hosts: *ca, path_suffix: [.crl]}\n",
                                  "p.yaml");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.policy->rules().at(1).match.hosts.size(), 2u);
}

TEST(PolicyLoader, AliasToAnUnfinishedAnchorIsAnError) {
  // A self-reference would make a cycle; it is refused before the loader ever walks it.
  EXPECT_EQ(one_error("version: 1\nrules: &r [*r]\n"),
            "p.yaml:2:12: not valid YAML: alias '*r' refers to no complete anchor before it");
  EXPECT_EQ(one_error("version: 1\nrules: *nope\n"),
            "p.yaml:2:8: not valid YAML: alias '*nope' refers to no complete anchor before it");
}

TEST(PolicyLoader, QuotedOrNullValuesAreNotNumbersOrLists) {
  EXPECT_EQ(one_error("version: '1'\nrules: []\n"),
            "p.yaml:1:10: unsupported version '1' (this authbypass reads policy schema version 1)");
  EXPECT_EQ(one_error(kHead + "  - id: r\n    match: {hosts: ~}\n"),
            "p.yaml:4:20: hosts must be a list, e.g. hosts: [a, b]");
}

TEST(PolicyLoader, OversizedTextIsRejectedBeforeParsing) {
  std::string big(kMaxPolicyFileBytes + 1, '#');
  EXPECT_EQ(one_error(big), "p.yaml:1:1: policy file is larger than 8 MiB");
}

TEST(PolicyLoader, GarbageBytesNeverLoad) {
  std::string junk;
  std::uint32_t x = 12345;
  for (int i = 0; i < 4096; ++i) {
    x = x * 1103515245u + 12345u;
    junk += static_cast<char>((x >> 16) & 0xff);
  }
  EXPECT_FALSE(load_policy_text(junk, "p.yaml").ok());
}

TEST(PolicyLoader, FileErrors) {
  LoadResult r = load_policy_file("/nonexistent/policy.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors.at(0),
            "/nonexistent/policy.yaml: cannot read policy: No such file or directory");
  r = load_policy_file("/tmp");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors.at(0), "/tmp: cannot read policy: not a regular file");
}

TEST(PolicyLoader, ShippedPolicyLoadsAndPassesItsTests) {
  LoadResult r = load_policy_file(AUTHBYPASS_SOURCE_DIR "/config/policy.yaml");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_GE(r.policy->tests().size(), 30u);
}

TEST(PolicyLoader, TenThousandRulesLoad) {
  std::string yaml = kHead;
  for (int i = 0; i < 10000; ++i) {
    yaml += "  - id: r" + std::to_string(i) + "\n    match: {hosts: [h" + std::to_string(i) +
            ".example.test, .d" + std::to_string(i) + ".test]}\n";
  }
  LoadResult r = load_policy_text(yaml, "p.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.policy->rules().size(), 10000u);
}

}  // namespace
}  // namespace authbypass
