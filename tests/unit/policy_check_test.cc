// `tests:` runner and the warnings of docs/architecture.md "Policy".
#include <gtest/gtest.h>

#include "authbypass/policy_check.h"

namespace authbypass {
namespace {

std::shared_ptr<const Policy> load(const std::string& yaml) {
  LoadResult r = load_policy_text(yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  return r.policy;
}

const Date kToday = *parse_date("2026-11-25");

const std::string kPolicy = R"(version: 1
rules:
  - id: crl
    match: {path_suffix: [.crl]}
  - id: watch
    mode: shadow
    match: {user_agent: [cryptoapi]}
  - id: old
    expires: 2026-12-01
    match: {hosts: [old.example]}
)";

TEST(PolicyTests, PassAndFailWithReasons) {
  auto p = load(kPolicy + R"(tests:
  - name: passes
    request: {url: "http://a.test/x.crl", user_agent: Microsoft-CryptoAPI/10.0}
    expect: bypass
    rule: crl
    shadow: [watch]
  - name: wrong verdict
    request: {url: "http://a.test/x.exe"}
    expect: bypass
  - name: wrong shadow
    request: {url: "http://a.test/x.crl"}
    expect: bypass
    shadow: [watch]
  - name: expired on its date
    request: {url: "http://old.example/"}
    expect: authenticate
    date: 2026-12-01
  - name: malformed
    request: {url: "http://3221225991/x.crl"}
    expect: bypass
)");
  TestReport rep = run_policy_tests(*p, kToday);
  EXPECT_EQ(rep.passed, 2);
  EXPECT_EQ(rep.failed, 3);
  EXPECT_TRUE(rep.results[0].passed);
  EXPECT_EQ(rep.results[1].failure, "expected bypass, got authenticate (no rule matched)");
  EXPECT_EQ(rep.results[2].failure, "expected shadow matches [watch], got []");
  EXPECT_TRUE(rep.results[3].passed);
  EXPECT_EQ(rep.results[4].failure,
            "expected bypass, got authenticate (malformed request: host is a numeric form other "
            "than a dotted-quad IPv4 address)");
}

TEST(PolicyTests, ExpectedRuleMustDecide) {
  auto p = load(R"(version: 1
rules:
  - id: first
    match: {hosts: [a.test]}
  - id: second
    match: {path_suffix: [.crl]}
tests:
  - name: t
    request: {url: "http://a.test/x.crl"}
    expect: bypass
    rule: second
)");
  TestReport rep = run_policy_tests(*p, kToday);
  ASSERT_EQ(rep.failed, 1);
  EXPECT_EQ(rep.results[0].failure, "expected rule second to decide, got bypass (rule first)");
}

TEST(PolicyLint, Warnings) {
  auto p = load(kPolicy + R"(  - id: tunnel
    match: {hosts: [login.example], methods: [CONNECT], ports: [443]}
  - id: tld
    match: {hosts: [.com]}
  - id: soon
    expires: 2026-12-10
    match: {hosts: [b.example]}
  - id: gone
    expires: 2026-11-25
    match: {hosts: [c.example]}
  - id: wide
    match: {hosts: [10.0.0.0/8]}
  - id: narrow
    match: {hosts: [crl.example], src: [10.0.0.0/8]}
)");
  std::vector<std::string> got;
  for (const auto& w : lint_policy(*p, kToday)) got.push_back(w.to_string());
  const std::vector<std::string> want = {
      "p.yaml:3:5: warning: rule 'crl': matches on client-controlled data alone (user_agent/path "
      "without hosts): any client can send it to any server; consider 'verify' so the ICAP "
      "service checks what comes back",
      "p.yaml:5:5: warning: rule 'watch': matches on client-controlled data alone "
      "(user_agent/path without hosts): any client can send it to any server",
      "p.yaml:8:5: warning: rule 'old': expires on 2026-12-01 (in 6 days)",
      "p.yaml:11:5: warning: rule 'tunnel': allows CONNECT to port 443: an opaque tunnel whose "
      "content cannot be checked",
      "p.yaml:13:5: warning: rule 'tld': hosts entry '.com' covers a whole top-level domain",
      "p.yaml:15:5: warning: rule 'soon': expires on 2026-12-10 (in 15 days)",
      "p.yaml:18:5: warning: rule 'gone': expired on 2026-11-25 and is inactive",
      "p.yaml:21:5: warning: rule 'wide': hosts entry '10.0.0.0/8' is a very wide address block",
  };
  EXPECT_EQ(got, want);
}

// CONNECT rules and unchecked rules that reach a customer-hosting domain are named, host by
// host; checked (verify) and shadow rules, IP literals and the providers' own names are not.
TEST(PolicyLint, CustomerHostingDomainsNamedHostByHost) {
  auto p = load(R"(version: 1
rules:
  - id: tunnels
    match:
      methods: [CONNECT]
      ports: [443]
      hosts: [mlccdn.blob.core.windows.net, .sharepoint.com, .windows.net, login.microsoftonline.com, 13.107.6.152, core.windows.net]
  - id: plain
    match: {hosts: [app.azurewebsites.net]}
  - id: checked
    match: {hosts: [.blob.core.windows.net, x.azureedge.net]}
    verify: crl
  - id: trial
    mode: shadow
    match: {hosts: [.azureedge.net], methods: [CONNECT], ports: [443]}
  - id: mixed
    match: {hosts: [crl.example], methods: [GET, CONNECT], ports: [80, 443]}
)");
  std::vector<std::string> got;
  for (const auto& w : lint_policy(*p, kToday)) got.push_back(w.to_string());
  const std::vector<std::string> want = {
      "p.yaml:3:5: warning: rule 'tunnels': allows CONNECT to port 443: an opaque tunnel whose "
      "content cannot be checked",
      "p.yaml:3:5: warning: rule 'tunnels': CONNECT to 'mlccdn.blob.core.windows.net', in the "
      "customer-hosting domain .core.windows.net (Azure Storage accounts: blobs, files, tables, "
      "queues and static web sites): any customer of that service can host there, so the tunnel "
      "reaches servers anyone can run",
      "p.yaml:3:5: warning: rule 'tunnels': CONNECT to '.sharepoint.com', in the "
      "customer-hosting domain .sharepoint.com (SharePoint Online and OneDrive sites of every "
      "tenant): any customer of that service can host there, so the tunnel reaches servers "
      "anyone can run",
      "p.yaml:3:5: warning: rule 'tunnels': CONNECT to '.windows.net', which covers the "
      "customer-hosting domain .core.windows.net (Azure Storage accounts: blobs, files, tables, "
      "queues and static web sites) and 3 more: any customer of that service can host there, so "
      "the tunnel reaches servers anyone can run",
      "p.yaml:8:5: warning: rule 'plain': unchecked bypass (verify: none) to "
      "'app.azurewebsites.net', in the customer-hosting domain .azurewebsites.net (Azure App "
      "Service web apps): any customer of that service can host there, so anyone's content "
      "passes unauthenticated",
      "p.yaml:13:5: warning: rule 'trial': allows CONNECT to port 443: an opaque tunnel whose "
      "content cannot be checked",
      "p.yaml:16:5: warning: rule 'mixed': allows CONNECT: an opaque tunnel whose content cannot "
      "be checked",
      "p.yaml:16:5: warning: rule 'mixed': allows port 443 (revocation data is served on port "
      "80)",
      // The wildcard lint names what the customer-hosting lint did not.
      "p.yaml:10:5: warning: rule 'checked': hosts entry '.blob.core.windows.net' covers "
      "blob.core.windows.net and every host under it, for any path (a web site or download host "
      "there skips authentication too): list the host names this rule is for, or add "
      "path_prefix/path_suffix.",
  };
  EXPECT_EQ(got, want);
}

// A ".domain" entry without path criteria, named with its rule; not for names, paths, tunnels,
// shadow or expired rules, or a whole TLD (warned above).
TEST(PolicyLint, WildcardHostsWithoutPathCriteriaAreNamed) {
  auto p = load(R"(version: 1
rules:
  - id: ca
    match: {hosts: [crl.example.com, .example.net, 192.0.2.0/24, .c.example.org]}
  - id: files
    match: {hosts: [.example.org], path_suffix: [.crl]}
  - id: regex
    match: {hosts: [.example.org], path_regex: ['^/crl/']}
  - id: tunnel
    match: {methods: [CONNECT], ports: [443], hosts: [.login.example.com]}
  - id: watch
    mode: shadow
    match: {hosts: [.example.info]}
  - id: gone
    expires: 2026-11-01
    match: {hosts: [.example.biz]}
  - id: tld
    match: {hosts: [.com]}
)");
  std::vector<std::string> got;
  for (const auto& w : lint_wildcard_hosts(*p, kToday)) got.push_back(w.to_string());
  const std::string tail =
      " and every host under it, for any path (a web site or download host there skips "
      "authentication too): list the host names this rule is for";
  const std::vector<std::string> want = {
      "p.yaml:3:5: warning: rule 'ca': hosts entry '.example.net' covers example.net" + tail +
          ", or add path_prefix/path_suffix.",
      "p.yaml:3:5: warning: rule 'ca': hosts entry '.c.example.org' covers c.example.org" + tail +
          ", or add path_prefix/path_suffix.",
      // Not the CONNECT-only 'tunnel': a tunnel has no path; its CONNECT warning names it.
  };
  EXPECT_EQ(got, want);
  // lint_policy includes them.
  std::size_t in_lint = 0;
  for (const auto& w : lint_policy(*p, kToday))
    in_lint += w.message.find("' covers ") != std::string::npos &&
               w.message.find("every host under it") != std::string::npos;
  EXPECT_EQ(in_lint, want.size());
}

TEST(PolicyLint, NamedHostsAndPathRulesGiveNoWildcardWarning) {
  auto p = load(R"(version: 1
rules:
  - id: ca
    match: {hosts: [crl.example.com, aia.example.com]}
    verify: revocation
  - id: files
    match: {hosts: [.example.org], path_prefix: [/pki/]}
    verify: revocation
)");
  EXPECT_TRUE(lint_wildcard_hosts(*p, kToday).empty());
  EXPECT_TRUE(lint_policy(*p, kToday).empty());
}

// Without the ICAP service, every active enforce rule with verify is named with what it
// then delivers unchecked; verify: none, shadow and expired rules are not.
TEST(PolicyLint, UnprotectedWithoutIcap) {
  auto p = load(R"(version: 1
rules:
  - id: crl-files
    match: {path_suffix: [.crl]}
    verify: crl
  - id: ocsp
    match: {methods: [GET, POST], hosts: [ocsp.example.com, .o.example.org]}
    verify: ocsp
  - id: pki
    match: {hosts: [www.example.com], path_prefix: [/pki/, /pkiops/], ports: [80, 8080]}
    verify: revocation
  - id: plain
    match: {hosts: [h.example.com]}
  - id: watch
    mode: shadow
    match: {hosts: [w.example.com]}
    verify: crl
  - id: gone
    expires: 2026-11-01
    match: {hosts: [g.example.com]}
    verify: crl
)");
  std::vector<std::string> got;
  for (const auto& w : unprotected_without_icap(*p, kToday)) got.push_back(w.to_string());
  const std::string tail =
      ") reaches clients without credentials unchecked, a program included. Deploy the ICAP "
      "service (the ICAP lines of `authbypass squid-config` and the c-icap include) or remove "
      "the rule.";
  const std::vector<std::string> want = {
      "p.yaml:3:5: warning: rule 'crl-files': verify: crl is not enforced without the ICAP "
      "service: whatever the origin answers (any host, GET, HEAD on port 80, paths ending in "
      ".crl" +
          tail,
      "p.yaml:6:5: warning: rule 'ocsp': verify: ocsp is not enforced without the ICAP service: "
      "whatever the origin answers (hosts ocsp.example.com, .o.example.org, GET, POST on port 80" +
          tail,
      "p.yaml:9:5: warning: rule 'pki': verify: revocation is not enforced without the ICAP "
      "service: whatever the origin answers (hosts www.example.com, GET, HEAD on ports 80, 8080, "
      "paths under /pki/, /pkiops/" +
          tail,
  };
  EXPECT_EQ(got, want);
  EXPECT_EQ(icap_dependency_note(*p, kToday),
            "note: 3 rules (crl-files, ocsp, pki) rely on the ICAP service for their verify "
            "check; without it they deliver whatever the origin sends. 'authbypass check "
            "--no-icap p.yaml' lists what each lets through then.");
  // Not part of the ordinary lint: only `check --no-icap` adds them.
  for (const auto& w : lint_policy(*p, kToday))
    EXPECT_EQ(w.message.find("ICAP service"), std::string::npos) << w.to_string();
}

TEST(PolicyLint, NoIcapNoteWithoutVerifyRules) {
  auto p = load(R"(version: 1
rules:
  - id: plain
    match: {hosts: [h.example.com]}
  - id: one
    match: {hosts: [c.example.com]}
    verify: crl
)");
  EXPECT_EQ(icap_dependency_note(*p, kToday),
            "note: 1 rule (one) relies on the ICAP service for its verify check; without it, it "
            "delivers whatever the origin sends. 'authbypass check --no-icap p.yaml' lists "
            "what each lets through then.");
  auto none = load("version: 1\nrules:\n  - id: plain\n    match: {hosts: [h.example.com]}\n");
  EXPECT_EQ(icap_dependency_note(*none, kToday), "");
  EXPECT_TRUE(unprotected_without_icap(*none, kToday).empty());
}

}  // namespace
}  // namespace authbypass
