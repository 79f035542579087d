// `tests:` runner and the warnings of DESIGN §2.
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
  };
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace authbypass
