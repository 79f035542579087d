// Engine semantics (docs/architecture.md "Policy"): small inline policies, loaded with
// load_policy_text and queried with Policy::decide on a pinned date.

#include "authbypass/decision.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "authbypass/policy.h"
#include "authbypass/policy_check.h"
#include "authbypass/request.h"

namespace authbypass {
namespace {

using namespace std::string_literals;

constexpr std::string_view kToday = "2026-11-25";

Date D(std::string_view text) {
  const auto date = parse_date(text);
  EXPECT_TRUE(date.has_value()) << text;
  return date.value_or(Date{});
}

// A policy with one rule `r1`; `match` is a YAML flow mapping, `extra` more rule lines
// (each indented four spaces).
std::string OneRule(std::string_view match, std::string_view extra = {}) {
  std::string yaml = "version: 1\nrules:\n  - id: r1\n";
  yaml += extra;
  yaml += "    match: ";
  yaml += match;
  yaml += "\n";
  return yaml;
}

std::string Errors(const LoadResult& result) {
  std::string text;
  for (const auto& e : result.errors) text += e + "\n";
  return text;
}

class DecisionTest : public ::testing::Test {
 protected:
  void Load(const std::string& yaml) {
    LoadResult result = load_policy_text(yaml, "test.yaml");
    ASSERT_TRUE(result.ok()) << "policy failed to load:\n" << Errors(result) << "---\n" << yaml;
    ASSERT_TRUE(result.errors.empty()) << Errors(result);
    policy_ = result.policy;
  }

  Decision Decide(std::string_view method, std::string_view url, std::string_view ua = {},
                  std::string_view src = {}, std::optional<Date> date = std::nullopt) {
    if (!policy_) {
      ADD_FAILURE() << "no policy loaded";
      return {};
    }
    req_.parse({.method = method, .url = url, .user_agent = ua, .src = src});
    const Decision d = policy_->decide(req_, date.value_or(D(kToday)), ctx_);
    // The memos in the context never change an answer.
    const Decision fresh = policy_->decide(req_, date.value_or(D(kToday)));
    EXPECT_EQ(fresh.rule, d.rule) << url;
    EXPECT_EQ(fresh.shadow_count, d.shadow_count) << url;
    // Invariants of every decision.
    EXPECT_EQ(d.bypass(), d.verdict == Verdict::kBypass);
    EXPECT_EQ(d.rule != nullptr, d.bypass()) << url;
    if (d.rule != nullptr) {
      EXPECT_EQ(d.rule->mode, Mode::kEnforce);
    }
    EXPECT_LE(d.shadow_count, Decision::kMaxShadow);
    for (std::size_t i = 0; i < d.shadow_count; ++i) {
      EXPECT_NE(d.shadow[i], nullptr);
      if (d.shadow[i] != nullptr) {
        EXPECT_EQ(d.shadow[i]->mode, Mode::kShadow);
      }
    }
    return d;
  }

  std::string Describe(std::string_view method, std::string_view url, const Decision& d) const {
    std::string s = std::string(method) + " " + std::string(url);
    if (!req_.ok()) s += " [malformed: " + std::string(req_.error()) + "]";
    s += d.bypass() ? " -> bypass" : " -> authenticate";
    if (d.rule != nullptr) s += " by " + d.rule->id;
    if (!d.reason.empty()) s += " (" + std::string(d.reason) + ")";
    return s;
  }

  // Bypass by rule `rule_id` (any rule when empty).
  ::testing::AssertionResult BypassesBy(std::string_view rule_id, std::string_view method,
                                        std::string_view url, std::string_view ua = {},
                                        std::string_view src = {},
                                        std::optional<Date> date = std::nullopt) {
    const Decision d = Decide(method, url, ua, src, date);
    if (!d.bypass() || (!rule_id.empty() && (d.rule == nullptr || d.rule->id != rule_id))) {
      return ::testing::AssertionFailure()
             << Describe(method, url, d) << "; expected bypass"
             << (rule_id.empty() ? "" : " by " + std::string(rule_id));
    }
    return ::testing::AssertionSuccess() << Describe(method, url, d);
  }

  ::testing::AssertionResult Bypasses(std::string_view method, std::string_view url,
                                      std::string_view ua = {}, std::string_view src = {},
                                      std::optional<Date> date = std::nullopt) {
    return BypassesBy("", method, url, ua, src, date);
  }

  ::testing::AssertionResult Authenticates(std::string_view method, std::string_view url,
                                           std::string_view ua = {}, std::string_view src = {},
                                           std::optional<Date> date = std::nullopt) {
    const Decision d = Decide(method, url, ua, src, date);
    if (d.bypass()) {
      return ::testing::AssertionFailure() << Describe(method, url, d) << "; expected authenticate";
    }
    return ::testing::AssertionSuccess() << Describe(method, url, d);
  }

  std::shared_ptr<const Policy> policy_;
  Request req_;
  EvalContext ctx_;
};

// ---------------------------------------------------------------------------------------------
// Verdict: any active enforce rule bypasses, first in file order reported; shadow never does.

using DecisionVerdict = DecisionTest;

TEST_F(DecisionVerdict, NoRuleMatchedAuthenticates) {
  Load(OneRule("{hosts: [crl.example.com]}"));
  const Decision d = Decide("GET", "http://www.example.com/x.crl");
  EXPECT_EQ(d.verdict, Verdict::kAuthenticate);
  EXPECT_FALSE(d.bypass());
  EXPECT_EQ(d.rule, nullptr);
  EXPECT_EQ(d.shadow_count, 0);
  EXPECT_FALSE(d.shadow_truncated);
  EXPECT_FALSE(d.regex_fault);
  EXPECT_FALSE(d.reason.empty());
}

TEST_F(DecisionVerdict, MatchingEnforceRuleBypasses) {
  Load(OneRule("{hosts: [crl.example.com]}"));
  const Decision d = Decide("GET", "http://crl.example.com/x.crl");
  EXPECT_EQ(d.verdict, Verdict::kBypass);
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->id, "r1");
  EXPECT_EQ(d.rule, policy_->find_rule("r1"));
  EXPECT_EQ(d.shadow_count, 0);
}

TEST_F(DecisionVerdict, ModeDefaultsToEnforce) {
  Load(OneRule("{hosts: [crl.example.com]}"));
  ASSERT_NE(policy_->find_rule("r1"), nullptr);
  EXPECT_EQ(policy_->find_rule("r1")->mode, Mode::kEnforce);
  Load(OneRule("{hosts: [crl.example.com]}", "    mode: enforce\n"));
  EXPECT_TRUE(BypassesBy("r1", "GET", "http://crl.example.com/x.crl"));
}

TEST_F(DecisionVerdict, FirstMatchingEnforceRuleInFileOrderDecides) {
  Load(R"y(version: 1
rules:
  - id: zz-first
    match: {hosts: [.example.com]}
  - id: aa-second
    match: {hosts: [crl.example.com]}
  - id: mm-third
    match: {path_suffix: [.crl]}
)y");
  EXPECT_TRUE(BypassesBy("zz-first", "GET", "http://crl.example.com/x.crl"));
  EXPECT_TRUE(BypassesBy("zz-first", "GET", "http://www.example.com/x.crl"));
  // Only a later rule matches: that one decides.
  EXPECT_TRUE(BypassesBy("mm-third", "GET", "http://other.test/x.crl"));
}

TEST_F(DecisionVerdict, LaterRuleDecidesWhenEarlierDoesNotMatch) {
  Load(R"y(version: 1
rules:
  - id: one
    match: {hosts: [one.example.com]}
  - id: two
    match: {hosts: [two.example.com]}
)y");
  EXPECT_TRUE(BypassesBy("one", "GET", "http://one.example.com/"));
  EXPECT_TRUE(BypassesBy("two", "GET", "http://two.example.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://three.example.com/"));
}

TEST_F(DecisionVerdict, FileOrderHoldsBetweenRulesWithAndWithoutHosts) {
  Load(R"y(version: 1
rules:
  - id: hostless
    match: {path_suffix: [.crl]}
  - id: hosted
    match: {hosts: [crl.example.com]}
)y");
  EXPECT_TRUE(BypassesBy("hostless", "GET", "http://crl.example.com/x.crl"));
  EXPECT_TRUE(BypassesBy("hosted", "GET", "http://crl.example.com/x.exe"));

  Load(R"y(version: 1
rules:
  - id: hosted
    match: {hosts: [crl.example.com]}
  - id: hostless
    match: {path_suffix: [.crl]}
)y");
  EXPECT_TRUE(BypassesBy("hosted", "GET", "http://crl.example.com/x.crl"));
  EXPECT_TRUE(BypassesBy("hostless", "GET", "http://other.example.com/x.crl"));
}

TEST_F(DecisionVerdict, FileOrderHoldsWithManyRulesForOneHost) {
  // Hundreds of rules naming the same host: the first matching one in file order decides,
  // however the engine indexes them.
  constexpr int kRules = 600;
  std::string yaml = "version: 1\nrules:\n";
  for (int i = 0; i < kRules; ++i) {
    const std::string n = std::to_string(1000 + i);
    yaml += "  - id: r" + n + "\n";
    yaml += "    match: {hosts: [crl.example.com, .example.com, 192.0.2.0/24], path_prefix: [/p" +
            n + "/, /all/]}\n";
  }
  yaml += "  - id: last\n    match: {path_suffix: [.crl]}\n";
  for (int i = 0; i < 20; ++i) {
    yaml += "  - id: s" + std::to_string(100 + i) + "\n    mode: shadow\n";
    yaml += "    match: {hosts: [.example.com]}\n";
  }
  Load(yaml);
  EXPECT_TRUE(BypassesBy("r1000", "GET", "http://crl.example.com/all/x"));
  EXPECT_TRUE(BypassesBy("r1000", "GET", "http://192.0.2.9/all/x"));
  EXPECT_TRUE(BypassesBy("r1599", "GET", "http://crl.example.com/p1599/x"));
  EXPECT_TRUE(BypassesBy("r1300", "GET", "http://a.example.com/p1300/x"));
  EXPECT_TRUE(BypassesBy("r1450", "GET", "http://192.0.2.9/p1450/x"));
  EXPECT_TRUE(BypassesBy("last", "GET", "http://crl.example.com/none/x.crl"));
  EXPECT_TRUE(BypassesBy("last", "GET", "http://other.test/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/none/x"));
  EXPECT_TRUE(Authenticates("GET", "http://192.0.3.9/p1450/x"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.org/p1450/x"));

  const Decision d = Decide("GET", "http://crl.example.com/p1599/x");
  EXPECT_EQ(d.shadow_count, Decision::kMaxShadow);
  EXPECT_TRUE(d.shadow_truncated);
  ASSERT_NE(d.shadow[0], nullptr);
  EXPECT_EQ(d.shadow[0]->id, "s100");
}

TEST_F(DecisionVerdict, MatchingShadowRuleAuthenticatesAndIsReported) {
  Load(OneRule("{hosts: [crl.example.com]}", "    mode: shadow\n"));
  const Decision d = Decide("GET", "http://crl.example.com/x.crl");
  EXPECT_EQ(d.verdict, Verdict::kAuthenticate);
  EXPECT_EQ(d.rule, nullptr);
  ASSERT_EQ(d.shadow_count, 1);
  ASSERT_NE(d.shadow[0], nullptr);
  EXPECT_EQ(d.shadow[0]->id, "r1");
  EXPECT_FALSE(d.shadow_truncated);

  // A shadow rule that does not match is not reported.
  const Decision miss = Decide("GET", "http://other.example.com/x.crl");
  EXPECT_FALSE(miss.bypass());
  EXPECT_EQ(miss.shadow_count, 0);
}

TEST_F(DecisionVerdict, ShadowAndEnforceTogether) {
  Load(R"y(version: 1
rules:
  - id: shadow-before
    mode: shadow
    match: {hosts: [.example.com]}
  - id: enforcer
    match: {hosts: [crl.example.com]}
  - id: shadow-after
    mode: shadow
    match: {path_suffix: [.crl]}
  - id: shadow-miss
    mode: shadow
    match: {hosts: [nowhere.test]}
)y");
  const Decision d = Decide("GET", "http://crl.example.com/x.crl");
  EXPECT_TRUE(d.bypass());
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->id, "enforcer");
  ASSERT_EQ(d.shadow_count, 2);
  EXPECT_EQ(d.shadow[0]->id, "shadow-before");
  EXPECT_EQ(d.shadow[1]->id, "shadow-after");

  // Shadow rules alone, in file order, never bypass.
  const Decision shadows_only = Decide("GET", "http://www.example.com/x.crl");
  EXPECT_FALSE(shadows_only.bypass());
  EXPECT_EQ(shadows_only.rule, nullptr);
  ASSERT_EQ(shadows_only.shadow_count, 2);
  EXPECT_EQ(shadows_only.shadow[0]->id, "shadow-before");
  EXPECT_EQ(shadows_only.shadow[1]->id, "shadow-after");
}

TEST_F(DecisionVerdict, ShadowListIsTruncatedPastMax) {
  std::string yaml = "version: 1\nrules:\n";
  const std::size_t n = Decision::kMaxShadow + 1;
  for (std::size_t i = 0; i < n; ++i) {
    yaml += "  - id: s" + std::to_string(100 + i) + "\n    mode: shadow\n";
    yaml += "    match: {hosts: [crl.example.com]}\n";
  }
  Load(yaml);
  const Decision d = Decide("GET", "http://crl.example.com/x.crl");
  EXPECT_FALSE(d.bypass());
  EXPECT_EQ(d.shadow_count, Decision::kMaxShadow);
  EXPECT_TRUE(d.shadow_truncated);
  ASSERT_NE(d.shadow[0], nullptr);
  EXPECT_EQ(d.shadow[0]->id, "s100");
  ASSERT_NE(d.shadow[Decision::kMaxShadow - 1], nullptr);
  EXPECT_EQ(d.shadow[Decision::kMaxShadow - 1]->id,
            "s" + std::to_string(100 + Decision::kMaxShadow - 1));
}

TEST_F(DecisionVerdict, ExactlyMaxShadowIsNotTruncated) {
  std::string yaml = "version: 1\nrules:\n";
  for (std::size_t i = 0; i < Decision::kMaxShadow; ++i) {
    yaml += "  - id: s" + std::to_string(100 + i) + "\n    mode: shadow\n";
    yaml += "    match: {hosts: [crl.example.com]}\n";
  }
  Load(yaml);
  const Decision d = Decide("GET", "http://crl.example.com/x.crl");
  EXPECT_EQ(d.shadow_count, Decision::kMaxShadow);
  EXPECT_FALSE(d.shadow_truncated);
}

// ---------------------------------------------------------------------------------------------
// Expiry: a rule is inactive from its `expires` day on.

using DecisionExpiry = DecisionTest;

TEST_F(DecisionExpiry, RuleExpiringTodayIsInactive) {
  Load(OneRule("{hosts: [crl.example.com]}", "    expires: 2026-11-25\n"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "", D("2026-11-25")));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "", D("2026-11-26")));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "", D("2031-01-01")));
  EXPECT_TRUE(BypassesBy("r1", "GET", "http://crl.example.com/x.crl", "", "", D("2026-11-24")));
  EXPECT_TRUE(BypassesBy("r1", "GET", "http://crl.example.com/x.crl", "", "", D("2020-01-01")));
}

TEST_F(DecisionExpiry, RuleExpiredLongAgoIsInactive) {
  Load(OneRule("{hosts: [crl.example.com]}", "    expires: 2024-02-29\n"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl"));
}

TEST_F(DecisionExpiry, RuleExpiringLaterIsActive) {
  Load(OneRule("{hosts: [crl.example.com]}", "    expires: 2026-11-26\n"));
  EXPECT_TRUE(BypassesBy("r1", "GET", "http://crl.example.com/x.crl"));
  ASSERT_NE(policy_->find_rule("r1"), nullptr);
  ASSERT_TRUE(policy_->find_rule("r1")->expires.has_value());
  EXPECT_EQ(*policy_->find_rule("r1")->expires, D("2026-11-26"));
}

TEST_F(DecisionExpiry, ExpiredRuleDoesNotShadowALaterRule) {
  Load(R"y(version: 1
rules:
  - id: old
    expires: 2026-01-01
    match: {hosts: [crl.example.com]}
  - id: new
    match: {hosts: [crl.example.com]}
)y");
  EXPECT_TRUE(BypassesBy("new", "GET", "http://crl.example.com/x.crl"));
  EXPECT_TRUE(BypassesBy("old", "GET", "http://crl.example.com/x.crl", "", "", D("2025-12-31")));
}

TEST_F(DecisionExpiry, ExpiredShadowRuleIsNotReported) {
  Load(OneRule("{hosts: [crl.example.com]}", "    mode: shadow\n    expires: 2026-11-25\n"));
  const Decision expired = Decide("GET", "http://crl.example.com/x.crl");
  EXPECT_FALSE(expired.bypass());
  EXPECT_EQ(expired.shadow_count, 0);
  const Decision active = Decide("GET", "http://crl.example.com/x.crl", "", "", D("2026-11-24"));
  EXPECT_FALSE(active.bypass());
  EXPECT_EQ(active.shadow_count, 1);
}

// ---------------------------------------------------------------------------------------------
// Safe defaults: GET/HEAD and port 80 unless listed; CONNECT only when listed.

using DecisionDefaults = DecisionTest;

TEST_F(DecisionDefaults, MethodsDefaultToGetAndHead) {
  Load(OneRule("{hosts: [crl.example.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl"));
  EXPECT_TRUE(Bypasses("HEAD", "http://crl.example.com/x.crl"));
  for (std::string_view method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"}) {
    EXPECT_TRUE(Authenticates(method, "http://crl.example.com/x.crl")) << method;
  }
  EXPECT_TRUE(Authenticates("CONNECT", "crl.example.com:80"));
  EXPECT_TRUE(Authenticates("CONNECT", "crl.example.com:443"));
  const Rule* rule = policy_->find_rule("r1");
  ASSERT_NE(rule, nullptr);
  EXPECT_TRUE(rule->match.methods_defaulted);
  EXPECT_TRUE(rule->match.ports_defaulted);
}

TEST_F(DecisionDefaults, PortDefaultsTo80) {
  Load(OneRule("{hosts: [crl.example.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com:80/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com:/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com:8080/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com:81/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "https://crl.example.com/x.crl"));  // port 443
}

TEST_F(DecisionDefaults, ListedPortsReplaceDefault) {
  Load(OneRule("{ports: [8080, 80], hosts: [crl.example.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com:8080/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com:8081/x.crl"));

  Load(OneRule("{ports: [8080], hosts: [crl.example.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com:8080/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl"));
}

TEST_F(DecisionDefaults, PostOnlyWhenListed) {
  Load(OneRule("{methods: [POST], hosts: [ocsp.example.com]}"));
  EXPECT_TRUE(Bypasses("POST", "http://ocsp.example.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://ocsp.example.com/"));  // the list replaces the default
  EXPECT_TRUE(Authenticates("PUT", "http://ocsp.example.com/"));

  Load(OneRule("{methods: [GET, POST], hosts: [ocsp.example.com]}"));
  EXPECT_TRUE(Bypasses("POST", "http://ocsp.example.com/"));
  EXPECT_TRUE(Bypasses("GET", "http://ocsp.example.com/"));
  EXPECT_TRUE(Authenticates("HEAD", "http://ocsp.example.com/"));
}

TEST_F(DecisionDefaults, ConnectOnlyWhenListedWithItsPort) {
  Load(OneRule("{methods: [CONNECT], ports: [443], hosts: [login.example.com]}"));
  EXPECT_TRUE(BypassesBy("r1", "CONNECT", "login.example.com:443"));
  EXPECT_TRUE(BypassesBy("r1", "CONNECT", "LOGIN.example.com.:443"));
  EXPECT_TRUE(Authenticates("CONNECT", "login.example.com:8443"));
  EXPECT_TRUE(Authenticates("CONNECT", "evil.test:443"));
  EXPECT_TRUE(Authenticates("GET", "https://login.example.com/"));
  EXPECT_TRUE(Authenticates("CONNECT", "login.example.com"));  // malformed

  // CONNECT listed but ports defaulted: port 80 only.
  Load(OneRule("{methods: [CONNECT], hosts: [login.example.com]}"));
  EXPECT_TRUE(Authenticates("CONNECT", "login.example.com:443"));

  // Port 443 listed but methods defaulted: no CONNECT.
  Load(OneRule("{ports: [443], hosts: [login.example.com]}"));
  EXPECT_TRUE(Authenticates("CONNECT", "login.example.com:443"));
  EXPECT_TRUE(Bypasses("GET", "https://login.example.com/"));

  Load(OneRule("{methods: [GET, HEAD, POST], ports: [80, 443], hosts: [login.example.com]}"));
  EXPECT_TRUE(Authenticates("CONNECT", "login.example.com:443"));
}

// ---------------------------------------------------------------------------------------------
// hosts

using DecisionHosts = DecisionTest;

TEST_F(DecisionHosts, ExactEntryMatchesThatHostOnly) {
  Load(OneRule("{hosts: [example.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://example.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://www.example.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://a.b.example.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://evilexample.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://example.com.evil.test/"));
  EXPECT_TRUE(Authenticates("GET", "http://example.co/"));
  EXPECT_TRUE(Authenticates("GET", "http://xample.com/"));
}

TEST_F(DecisionHosts, DotEntryMatchesDomainAndSubdomainsAtLabelBoundaries) {
  Load(OneRule("{hosts: [.example.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://example.com/"));
  EXPECT_TRUE(Bypasses("GET", "http://www.example.com/"));
  EXPECT_TRUE(Bypasses("GET", "http://a.b.example.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://evilexample.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://www.evilexample.com/"));
  EXPECT_TRUE(Authenticates("GET", "http://example.com.evil.test/"));
  EXPECT_TRUE(Authenticates("GET", "http://example.org/"));
  EXPECT_TRUE(Authenticates("GET", "http://com/"));
}

TEST_F(DecisionHosts, VerisignLookalikes) {
  Load(OneRule("{hosts: [.verisign.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.verisign.com/pca3.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://evilverisign.com/pca3.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.verisign.com.evil.test/pca3.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.verisign.com@evil.test/pca3.crl"));
}

TEST_F(DecisionHosts, UserinfoDoesNotCount) {
  Load(OneRule("{hosts: [crl.verisign.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.verisign.com/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.verisign.com@evil.test/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.verisign.com:80@evil.test/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://evil.test@crl.verisign.com/x.crl"));
}

TEST_F(DecisionHosts, CaseInsensitiveAndOneTrailingDot) {
  Load(OneRule("{hosts: [crl.verisign.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://CRL.VeriSign.COM/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.verisign.com./x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://CRL.VERISIGN.COM./x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.verisign.com../x.crl"));

  Load(OneRule("{hosts: [CRL.VeriSign.COM, .DigiCert.COM]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.verisign.com/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://crl3.digicert.com/x.crl"));

  Load(OneRule("{hosts: [crl.verisign.com.]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.verisign.com/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.verisign.com./x.crl"));
}

TEST_F(DecisionHosts, NonAsciiComparedInPunycode) {
  Load(
      OneRule("{hosts: [b\xC3\xBC"
              "cher.example]}"));
  EXPECT_TRUE(Bypasses("GET", "http://xn--bcher-kva.example/x.crl"));
  EXPECT_TRUE(Bypasses("GET",
                       "http://b\xC3\xBC"
                       "cher.example/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://bucher.example/x.crl"));

  Load(OneRule("{hosts: [xn--bcher-kva.example]}"));
  EXPECT_TRUE(Bypasses("GET",
                       "http://b\xC3\xBC"
                       "cher.example/x.crl"));
}

TEST_F(DecisionHosts, IpEntryMatchesThatLiteral) {
  Load(OneRule("{hosts: [192.0.2.7]}"));
  EXPECT_TRUE(Bypasses("GET", "http://192.0.2.7/a.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://192.0.2.8/a.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://[::ffff:192.0.2.7]/a.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://192.0.2.7.evil.test/a.crl"));
}

TEST_F(DecisionHosts, OddNumericFormsNeverMatch) {
  Load(OneRule("{hosts: [192.0.2.7]}"));
  for (std::string_view url :
       {"http://3221225991/a.crl", "http://0xc0.0.2.7/a.crl", "http://0300.0.2.7/a.crl",
        "http://0xc0000207/a.crl", "http://192.0.2.07/a.crl", "http://192.0.519/a.crl"}) {
    EXPECT_TRUE(Authenticates("GET", url));
  }
  Load(OneRule("{path_suffix: [.crl]}"));
  EXPECT_TRUE(Bypasses("GET", "http://192.0.2.7/a.crl"));
  for (std::string_view url : {"http://3221225991/a.crl", "http://0xc0.0.2.7/a.crl",
                               "http://0300.0.2.7/a.crl", "http://192.0.2/a.crl"}) {
    EXPECT_TRUE(Authenticates("GET", url));
  }
}

TEST_F(DecisionHosts, CidrEntryMatchesIpLiteralsInside) {
  Load(OneRule("{hosts: [13.107.0.0/16]}"));
  EXPECT_TRUE(Bypasses("GET", "http://13.107.6.152/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://13.107.0.0/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://13.107.255.255/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://13.108.0.1/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://13.106.255.255/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://13.107.6.152.example.com/x.crl"));
}

TEST_F(DecisionHosts, Ipv6CidrEntry) {
  Load(OneRule("{hosts: ['2001:db8::/32']}"));
  EXPECT_TRUE(Bypasses("GET", "http://[2001:db8::1]/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://[2001:DB8:0:0:0:0:0:abcd]/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://[2001:db9::1]/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://32.1.13.184/x.crl"));  // same leading bytes, IPv4

  Load(OneRule("{hosts: ['2001:db8::1']}"));
  EXPECT_TRUE(Bypasses("GET", "http://[2001:db8::1]/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://[2001:db8::2]/x.crl"));
}

TEST_F(DecisionHosts, NoDnsLookups) {
  // An IP entry never matches a name and a name entry never matches an IP literal.
  Load(OneRule("{hosts: [127.0.0.0/8, '::1']}"));
  EXPECT_TRUE(Bypasses("GET", "http://127.0.0.1/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://localhost/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://ip6-localhost/x.crl"));

  Load(OneRule("{hosts: [localhost, .in-addr.arpa]}"));
  EXPECT_TRUE(Bypasses("GET", "http://localhost/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://127.0.0.1/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://[::1]/x.crl"));
}

TEST_F(DecisionHosts, UrlHostDecidesAndHostHeaderIsNoInput) {
  // RequestInput has exactly these fields (four texts and the User-Agent's cache id):
  // there is nowhere to pass a Host header.
  auto [method, url, user_agent, src, user_agent_id] = RequestInput{};
  static_assert(std::is_same_v<decltype(url), std::string_view>);
  static_assert(std::is_same_v<decltype(user_agent_id), std::uint64_t>);
  (void)method, (void)user_agent, (void)src, (void)user_agent_id;

  Load(OneRule("{hosts: [crl.verisign.com]}"));
  EXPECT_TRUE(Authenticates("GET", "http://evil.test/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.verisign.com/x.crl"));
}

TEST_F(DecisionHosts, HostsListIsOr) {
  Load(OneRule("{hosts: [crl.microsoft.com, .digicert.com, 192.0.2.7, 13.107.0.0/16]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.microsoft.com/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://crl3.digicert.com/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://192.0.2.7/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://13.107.4.52/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://www.microsoft.com/x.crl"));
}

// ---------------------------------------------------------------------------------------------
// Paths

using DecisionPaths = DecisionTest;

TEST_F(DecisionPaths, SuffixMustNotBypass) {
  Load(OneRule("{path_suffix: [.crl]}"));
  for (std::string_view url : {
           "http://evil.test/x.exe?x=.crl",
           "http://evil.test/x.exe?.crl",
           "http://evil.test/index.html;.crl",
           "http://evil.test/x.crl/../evil.exe",
           "http://evil.test/x.crl/%2e%2e/evil.exe",
           "http://evil.test/x.exe#.crl",
           "http://evil.test/x.exe%3f.crl",
           "http://evil.test/x.exe%3F.crl",
           "http://evil.test/x.exe%23.crl",
           "http://evil.test/x.exe%3b.crl",
           "http://evil.test/x.exe%00.crl",
           "http://evil.test/x.exe%0a.crl",
           "http://evil.test/x%zz.crl",
           "http://evil.test/x%4.crl",
           "http://evil.test/x.exe%5c.crl",
           "http://evil.test/x.exe\\.crl",
           "http://evil.test/x.crl.exe",
           "http://evil.test/x.crlx",
           "http://evil.test/",
       }) {
    EXPECT_TRUE(Authenticates("GET", url));
  }
}

TEST_F(DecisionPaths, SuffixMustBypass) {
  Load(OneRule("{path_suffix: [.crl]}"));
  for (std::string_view url : {
           "http://crl.example.com/x.crl",
           "http://crl.example.com/X.CRL",
           "http://crl.example.com/a/../x.crl",
           "http://crl.example.com/x%2Ecrl",
           "http://crl.example.com/x.crl?x=.exe",  // the query is not matched
           "http://crl.example.com/x.crl?a;b",     // nor is a semicolon in the query
           "http://crl.example.com/Microsoft%20RSA%20TLS%20CA%2001.crl",
           "http://crl.example.com/pki/.well/x.crl",
           "http://[2001:db8::1]/x.crl",
           "http://192.0.2.7/x.crl",
       }) {
    EXPECT_TRUE(Bypasses("GET", url));
  }
}

// A path that origins may resolve to another file than the engine's reading never matches
// a rule with path criteria: ;params, a fragment, an empty segment, encoded delimiters,
// double encoding, encoded or odd dot-segments, backslashes, non-ASCII bytes.
constexpr std::string_view kAmbiguousPaths[] = {
    "/pki/x;/../../a.exe",      // Tomcat: /a.exe; RFC 3986: /pki/x;/...
    "/pki/..;/a.exe",           // Tomcat reads "..;" as ".."
    "/pki/x.crl;",              // an empty ;params
    "/pki//../a.exe",           // slash-merging origins: /a.exe; RFC 3986: /pki/a.exe
    "//pki/x.crl",              // a leading empty segment
    "/pki/x.crl//",             // a trailing one
    "/pki/x#/../../a.exe",      // Squid forwards the fragment
    "/pki/x.crl#",              // an empty fragment
    "/x%2f..%2fpki/a.crl",      // %2F: a separator only to origins that decode it first
    "/pki%2fa.crl",             //
    "/pki/..%5ca.exe",          // %5C: a separator to IIS / Windows
    "/pki/..\\a.exe",           // a raw backslash
    "/pki/%2e%2e/a.exe",        // an encoded dot-segment
    "/x/%2e%2e/pki/a.crl",      // one that would climb INTO the prefix
    "/x/.%2E/pki/a.crl",        //
    "/x/%2e/pki/a.crl",         //
    "/x/.../pki/a.crl",         // three dots
    "/x/..%20/pki/a.crl",       // dots and a space
    "/pki/%252e%252e/a.exe",    // double encoding: %25
    "/pki/%25/a.crl",           //
    "/pki/a.exe%3b.crl",        // encoded ';', '#', '?'
    "/pki/a.exe%23.crl",        //
    "/pki/a.exe%3f.crl",        //
    "/pki/%c0%ae%c0%ae/a.exe",  // overlong UTF-8 dots (old IIS)
    "/pki/%e2%80%a4/a.crl",     // non-ASCII, encoded
    "/pki/\xc3\xbc.crl",        // non-ASCII, raw
    "/pki/%u002e%u002e/a.exe",  // IIS %u escapes are malformed escapes
};

TEST_F(DecisionPaths, AmbiguousPathsNeverMatchPathRules) {
  struct Case {
    const char* match;
    const char* plain;  // a plain path the rule matches
  };
  for (const Case& c :
       {Case{"{path_prefix: [/pki/]}", "/pki/x.crl"}, Case{"{path_prefix: [/]}", "/x"},
        Case{"{path_suffix: [.crl]}", "/a.crl"}, Case{"{path_suffix: [.exe]}", "/a.exe"},
        Case{"{path_regex: ['^/.*$']}", "/pki/a.exe"},
        Case{"{hosts: [h.example], path_prefix: [/pki/, /x/]}", "/x/a"}}) {
    const char* match = c.match;
    Load(OneRule(match));
    EXPECT_TRUE(Bypasses("GET", "http://h.example" + std::string(c.plain))) << match;
    for (std::string_view path : kAmbiguousPaths) {
      EXPECT_TRUE(Authenticates("GET", "http://h.example" + std::string(path))) << match;
    }
  }
}

TEST_F(DecisionPaths, AmbiguousPathsStillMatchRulesWithoutPathCriteria) {
  Load(OneRule("{hosts: [h.example]}"));
  for (std::string_view path : kAmbiguousPaths) {
    EXPECT_TRUE(Bypasses("GET", "http://h.example" + std::string(path)));
  }
}

TEST_F(DecisionPaths, OverlongUrlNeverMatches) {
  Load(OneRule("{path_suffix: [.crl]}"));
  const std::string prefix = "http://crl.example.com/";
  const std::string fits = prefix + std::string(kMaxUrlLength - prefix.size() - 4, 'a') + ".crl";
  ASSERT_EQ(fits.size(), kMaxUrlLength);
  EXPECT_TRUE(Bypasses("GET", fits));
  const std::string too_long = prefix + std::string(kMaxUrlLength, 'a') + ".crl";
  EXPECT_TRUE(Authenticates("GET", too_long));
}

TEST_F(DecisionPaths, Prefix) {
  Load(OneRule("{path_prefix: [/pki/]}"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/pki/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/PKI/X.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/a/../pki/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pkix/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki/../x.exe"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki/%2e%2e/x.exe"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/x.exe?/pki/"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/x.exe;/pki/"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/a/pki/x.crl"));
}

TEST_F(DecisionPaths, RegexIsCaseInsensitiveOnNormalizedPathAlone) {
  Load(OneRule(R"y({path_regex: ['^/pki/[^/]+\.crl$']})y"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/pki/root.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/PKI/ROOT.CRL"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/pki/root.crl?x=1"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/x/../pki/root.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki/a/root.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki/x.exe?.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki/x.exe;.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki/x.crl/../x.exe"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/pki/x%00.crl"));
}

TEST_F(DecisionPaths, UnmatchablePathFailsEvenCatchAllPatterns) {
  for (const char* match : {"{path_regex: ['^.*$']}", "{path_prefix: [/]}", "{path_suffix: ['']}",
                            "{path_prefix: ['']}"}) {
    const LoadResult result = load_policy_text(OneRule(match), "test.yaml");
    if (!result.ok()) continue;  // an empty literal may well be a load error
    policy_ = result.policy;
    EXPECT_TRUE(Bypasses("GET", "http://h.example/a.crl")) << match;
    EXPECT_TRUE(Authenticates("GET", "http://h.example/a%00.crl")) << match;
    EXPECT_TRUE(Authenticates("GET", "http://h.example/a%zz.crl")) << match;
    EXPECT_TRUE(Authenticates("GET", "http://h.example/a%3f.crl")) << match;
  }
}

TEST_F(DecisionPaths, CriteriaAreAndListsAreOr) {
  Load(OneRule("{hosts: [.example.com], path_prefix: [/pki/, /crl/], path_suffix: [.crl, .crt]}"));
  EXPECT_TRUE(Bypasses("GET", "http://a.example.com/pki/x.crl"));
  EXPECT_TRUE(Bypasses("GET", "http://a.example.com/crl/x.crt"));
  EXPECT_TRUE(Authenticates("GET", "http://a.example.com/pki/x.exe"));
  EXPECT_TRUE(Authenticates("GET", "http://a.example.com/other/x.crl"));
  EXPECT_TRUE(Authenticates("GET", "http://a.example.org/pki/x.crl"));
}

// ---------------------------------------------------------------------------------------------
// User agent

using DecisionUserAgent = DecisionTest;

constexpr std::string_view kMsoidcrlUa =
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0; MSOIDCRL 7.250.4303.0)";

TEST_F(DecisionUserAgent, LiteralIsCaseInsensitiveSubstring) {
  Load(OneRule("{hosts: [login.example.com], user_agent: [MSOIDCRL]}"));
  EXPECT_TRUE(Bypasses("GET", "http://login.example.com/", kMsoidcrlUa));
  EXPECT_TRUE(Bypasses("GET", "http://login.example.com/", "msoidcrl"));
  EXPECT_TRUE(Bypasses("GET", "http://login.example.com/", "xMsOiDcRlx"));
  EXPECT_TRUE(Authenticates("GET", "http://login.example.com/", "Mozilla/5.0"));
  EXPECT_TRUE(Authenticates("GET", "http://login.example.com/", "MSOID CRL"));
  EXPECT_TRUE(Authenticates("GET", "http://login.example.com/", ""));
}

TEST_F(DecisionUserAgent, HostsAndUserAgentBothMustHold) {
  Load(OneRule("{hosts: [login.example.com], user_agent: [MSOIDCRL]}"));
  EXPECT_TRUE(Authenticates("GET", "http://evil.test/", kMsoidcrlUa));
  EXPECT_TRUE(Authenticates("GET", "http://evil.test/x.crl", kMsoidcrlUa));
  EXPECT_TRUE(Authenticates("GET", "http://login.example.com/", "curl/8.0"));
}

TEST_F(DecisionUserAgent, UserAgentOnlyRuleMatchesAnyHost) {
  Load(OneRule("{user_agent: [MSOIDCRL]}"));
  EXPECT_TRUE(Bypasses("GET", "http://login.example.com/", kMsoidcrlUa));
  EXPECT_TRUE(Bypasses("GET", "http://anything.test/whatever.exe", kMsoidcrlUa));
  EXPECT_TRUE(Bypasses("GET", "http://192.0.2.99/", kMsoidcrlUa));
  EXPECT_TRUE(Authenticates("GET", "http://anything.test/", "Mozilla/5.0"));
  // Still subject to the method and port defaults.
  EXPECT_TRUE(Authenticates("POST", "http://anything.test/", kMsoidcrlUa));
  EXPECT_TRUE(Authenticates("GET", "http://anything.test:8080/", kMsoidcrlUa));
  EXPECT_TRUE(Authenticates("CONNECT", "anything.test:443", kMsoidcrlUa));
}

TEST_F(DecisionUserAgent, RegexIsSearchedCaseInsensitively) {
  Load(OneRule(R"y({user_agent_regex: ['^Microsoft-CryptoAPI/(6\.[0-3]|10\.0)$']})y"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/x.crl", "Microsoft-CryptoAPI/10.0"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/x.crl", "Microsoft-CryptoAPI/6.1"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/x.crl", "MICROSOFT-CRYPTOAPI/6.3"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/x.crl", "Microsoft-CryptoAPI/6.4"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/x.crl", "Microsoft-CryptoAPI/10.0 x"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/x.crl", "x Microsoft-CryptoAPI/10.0"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/x.crl", ""));

  Load(OneRule(R"y({user_agent_regex: ['CryptoAPI/\d']})y"));
  EXPECT_TRUE(Bypasses("GET", "http://h.example/x.crl", "Microsoft-CryptoAPI/10.0"));
  EXPECT_TRUE(Authenticates("GET", "http://h.example/x.crl", "Microsoft-CryptoAPI/x"));
}

// ---------------------------------------------------------------------------------------------
// Client address

using DecisionSrc = DecisionTest;

TEST_F(DecisionSrc, SrcRestrictsClients) {
  Load(OneRule("{hosts: [crl.example.com], src: [10.0.0.0/8, '2001:db8::/32']}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl", "", "10.1.2.3"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl", "", "2001:db8::5"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "192.168.1.1"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "11.0.0.1"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "2001:db9::5"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "::ffff:10.1.2.3"));
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", ""));  // unknown client
  EXPECT_TRUE(Authenticates("GET", "http://crl.example.com/x.crl", "", "10.1.2"));  // malformed
}

TEST_F(DecisionSrc, NoSrcMeansAnyClient) {
  Load(OneRule("{hosts: [crl.example.com]}"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl", "", "192.168.1.1"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl", "", "2001:db8::5"));
  EXPECT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl", "", ""));
}

// ---------------------------------------------------------------------------------------------
// Malformed requests always authenticate

using DecisionMalformed = DecisionTest;

TEST_F(DecisionMalformed, AlwaysAuthenticates) {
  // This rule matches any well-formed GET on port 80 with the right user agent.
  Load(OneRule("{user_agent: [MSOIDCRL]}"));
  ASSERT_TRUE(Bypasses("GET", "http://crl.example.com/x.crl", kMsoidcrlUa));
  const std::string long_url = "http://crl.example.com/" + std::string(kMaxUrlLength, 'a');
  const std::string long_ua = std::string(kMsoidcrlUa) + std::string(kMaxUserAgentLength, ' ');
  struct Case {
    std::string_view method, url, ua, src;
  };
  for (const Case& c : std::vector<Case>{
           {"GET", "http://3221225991/x.crl", kMsoidcrlUa, ""},
           {"GET", "http://0xc0.0.2.7/x.crl", kMsoidcrlUa, ""},
           {"GET", "ftp://crl.example.com/x.crl", kMsoidcrlUa, ""},
           {"GET", "/x.crl", kMsoidcrlUa, ""},
           {"GET", "", kMsoidcrlUa, ""},
           {"GET", "http://crl.example.com/a b.crl", kMsoidcrlUa, ""},
           {"GET", "http://crl.example.com:0/x.crl", kMsoidcrlUa, ""},
           {"GET", "http://crl.example.com../x.crl", kMsoidcrlUa, ""},
           {"GET", long_url, kMsoidcrlUa, ""},
           {"GET", "http://crl.example.com/x.crl", long_ua, ""},
           {"GET", "http://crl.example.com/x.crl", kMsoidcrlUa, "not-an-ip"},
       }) {
    const Decision d = Decide(c.method, c.url, c.ua, c.src);
    EXPECT_FALSE(req_.ok()) << c.url << " should be malformed";
    EXPECT_FALSE(d.bypass()) << Describe(c.method, c.url, d);
    EXPECT_EQ(d.rule, nullptr);
    EXPECT_EQ(d.shadow_count, 0);
  }
}

TEST_F(DecisionMalformed, ShadowRulesAreNotReportedEither) {
  Load(OneRule("{user_agent: [MSOIDCRL]}", "    mode: shadow\n"));
  const Decision d = Decide("GET", "http://3221225991/x.crl", kMsoidcrlUa);
  ASSERT_FALSE(req_.ok());
  EXPECT_FALSE(d.bypass());
  EXPECT_EQ(d.shadow_count, 0);
}

// ---------------------------------------------------------------------------------------------
// Runaway regexes: a non-match, never a crash or a hang.

using DecisionRegexFault = DecisionTest;

constexpr auto kRunawayBudget = std::chrono::seconds(10);

TEST_F(DecisionRegexFault, RunawayUserAgentRegexIsANonMatch) {
  Load(OneRule("{user_agent_regex: ['(a+)+$']}"));
  ASSERT_TRUE(Bypasses("GET", "http://h.example/", "aaaa"));  // the regex works

  const std::string ua = std::string(3000, 'a') + "b";
  const auto start = std::chrono::steady_clock::now();
  const Decision d = Decide("GET", "http://h.example/", ua);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kRunawayBudget);
  ASSERT_TRUE(req_.ok()) << req_.error();
  EXPECT_FALSE(d.bypass());
  EXPECT_EQ(d.rule, nullptr);
  if (d.regex_fault) {
    EXPECT_GE(policy_->regex_faults(), 1u);
  }
}

TEST_F(DecisionRegexFault, RunawayPathRegexIsANonMatch) {
  Load(OneRule("{path_regex: ['^/(a+)+$']}"));
  ASSERT_TRUE(Bypasses("GET", "http://h.example/aaaa"));

  const std::string url = "http://h.example/" + std::string(3000, 'a') + "b";
  const auto start = std::chrono::steady_clock::now();
  const Decision d = Decide("GET", url);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kRunawayBudget);
  ASSERT_TRUE(req_.ok()) << req_.error();
  EXPECT_FALSE(d.bypass());
  if (d.regex_fault) {
    EXPECT_GE(policy_->regex_faults(), 1u);
  }
}

TEST_F(DecisionRegexFault, LaterRulesStillDecide) {
  Load(R"y(version: 1
rules:
  - id: runaway
    match: {user_agent_regex: ['(a+)+$']}
  - id: runaway-shadow
    mode: shadow
    match: {user_agent_regex: ['(a+)+$']}
  - id: plain
    match: {hosts: [crl.example.com]}
)y");
  const std::string ua = std::string(3000, 'a') + "b";
  const auto start = std::chrono::steady_clock::now();
  const Decision d = Decide("GET", "http://crl.example.com/x.crl", ua);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kRunawayBudget);
  EXPECT_TRUE(d.bypass());
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->id, "plain");
  EXPECT_EQ(d.shadow_count, 0);
}

// ---------------------------------------------------------------------------------------------
// Loading: all or nothing, errors as file:line:column: message.

class DecisionLoad : public ::testing::Test {
 protected:
  // Expects the policy to be rejected; returns its errors.
  static std::vector<std::string> Rejected(const std::string& yaml) {
    const LoadResult result = load_policy_text(yaml, "test.yaml");
    EXPECT_FALSE(result.ok()) << "loaded but should not:\n" << yaml;
    EXPECT_EQ(result.policy, nullptr);
    EXPECT_FALSE(result.errors.empty()) << yaml;
    static const std::regex kFormat(R"(^test\.yaml:[1-9][0-9]*:[1-9][0-9]*: .+)");
    for (const auto& e : result.errors) {
      EXPECT_TRUE(std::regex_search(e, kFormat)) << "badly formatted error: " << e;
    }
    return result.errors;
  }

  // True iff some error is reported on `line`.
  static bool HasErrorOnLine(const std::vector<std::string>& errors, int line) {
    const std::string prefix = "test.yaml:" + std::to_string(line) + ":";
    for (const auto& e : errors) {
      if (e.starts_with(prefix)) return true;
    }
    return false;
  }
};

// The example policy of docs/architecture.md "Policy", with the description quoted (unquoted,
// its ": " is invalid YAML).
TEST_F(DecisionLoad, DesignExampleLoads) {
  const LoadResult result = load_policy_text(R"y(version: 1
rules:
  - id: crl-files                 # unique, [a-z0-9][a-z0-9._-]*
    description: "CRL downloads (Microsoft: exclude *.crl from proxy authentication)"
    owner: secops@example.com     # optional metadata, logged and reported
    ticket: SEC-1234              # optional
    mode: enforce                 # enforce (default) | shadow: log "would bypass", answer as if no match
    expires: 2027-06-30           # optional; from that day the rule is inactive; `check` warns 30 days ahead
    match:                        # every key present must hold (AND); a list holds if any entry holds (OR)
      methods: [GET, HEAD]        # default when absent: GET, HEAD. POST and CONNECT only when listed.
      ports: [80]                 # default when absent: 80
      hosts: [crl.microsoft.com, .digicert.com, 192.0.2.7, 13.107.0.0/16]
      path_prefix: [/pki/]
      path_suffix: [.crl]
      path_regex: ['^/pki/[^/]+\.crl$']        # Boost.Regex (perl), case-insensitive, whole path
      user_agent: [MSOIDCRL]                   # literal, case-insensitive substring
      user_agent_regex: ['^Microsoft-CryptoAPI/(6\.[0-3]|10\.0)$']  # searched in the UA
      src: [10.0.0.0/8, 2001:db8::/32]         # client address
    verify: crl                   # none | crl | ocsp | cert | ctl | revocation (= any of crl, ocsp, cert, pkcs7, ctl)
tests:                            # run by `authbypass test` and by `authbypass check`
  - name: Windows fetches a VeriSign CRL
    request: {method: GET, url: "http://crl.verisign.com/pca3.crl", user_agent: "Microsoft-CryptoAPI/6.1", src: 10.1.2.3}
    expect: bypass                # bypass | authenticate
    rule: crl-files               # optional: the rule that must decide
)y",
                                             "test.yaml");
  ASSERT_TRUE(result.ok()) << Errors(result);
  const Policy& policy = *result.policy;
  ASSERT_EQ(policy.rules().size(), 1u);
  const Rule& rule = policy.rules()[0];
  EXPECT_EQ(rule.id, "crl-files");
  EXPECT_EQ(rule.owner, "secops@example.com");
  EXPECT_EQ(rule.ticket, "SEC-1234");
  EXPECT_EQ(rule.mode, Mode::kEnforce);
  EXPECT_EQ(rule.verify, Verify::kCrl);
  ASSERT_TRUE(rule.expires.has_value());
  EXPECT_EQ(*rule.expires, D("2027-06-30"));
  EXPECT_EQ(rule.match.hosts.size(), 4u);
  EXPECT_EQ(rule.match.src.size(), 2u);
  EXPECT_FALSE(rule.match.methods_defaulted);
  EXPECT_FALSE(rule.match.ports_defaulted);
  EXPECT_EQ(policy.tests().size(), 1u);
  EXPECT_EQ(policy.file(), "test.yaml");
}

TEST_F(DecisionLoad, UnknownKeysAreErrors) {
  Rejected("version: 1\nrules:\n  - id: r1\n    match: {hosts: [a.example]}\nextra: 1\n");
  Rejected("version: 1\nrules:\n  - id: r1\n    colour: red\n    match: {hosts: [a.example]}\n");
  const auto errors = Rejected(
      "version: 1\n"
      "rules:\n"
      "  - id: r1\n"
      "    match:\n"
      "      hosts: [a.example]\n"
      "      host: [b.example]\n");
  EXPECT_TRUE(HasErrorOnLine(errors, 6)) << errors.front();
}

TEST_F(DecisionLoad, WrongTypesAreErrors) {
  Rejected(OneRule("{ports: [eighty], hosts: [a.example]}"));
  Rejected(OneRule("{ports: [70000], hosts: [a.example]}"));
  Rejected(OneRule("[hosts, a.example]"));
  Rejected(OneRule("{hosts: {a: b}}"));
  Rejected("version: one\nrules:\n  - id: r1\n    match: {hosts: [a.example]}\n");
  Rejected("version: 1\nrules: {id: r1}\n");
}

TEST_F(DecisionLoad, OtherSchemaVersionsAreErrors) {
  Rejected("version: 2\nrules:\n  - id: r1\n    match: {hosts: [a.example]}\n");
}

TEST_F(DecisionLoad, BadValuesAreErrors) {
  Rejected(OneRule("{hosts: [a.example]}", "    mode: audit\n"));
  Rejected(OneRule("{hosts: [a.example]}", "    verify: pdf\n"));
  Rejected("version: 1\nrules:\n  - id: Bad_Id\n    match: {hosts: [a.example]}\n");
  Rejected(OneRule("{path_regex: ['(']}"));
  Rejected(OneRule("{user_agent_regex: ['[a-']}"));
  Rejected(OneRule("{hosts: [a..example]}"));
}

TEST_F(DecisionLoad, DuplicateIdsAreErrors) {
  Rejected(R"y(version: 1
rules:
  - id: same
    match: {hosts: [a.example]}
  - id: same
    match: {hosts: [b.example]}
)y");
}

TEST_F(DecisionLoad, EmptyMatchIsAnError) {
  Rejected(OneRule("{}"));
}

TEST_F(DecisionLoad, BadCidrsAreErrors) {
  const auto errors = Rejected(
      "version: 1\n"
      "rules:\n"
      "  - id: r1\n"
      "    match:\n"
      "      hosts: [a.example]\n"
      "      src: [10.1.2.3/8]\n");
  EXPECT_TRUE(HasErrorOnLine(errors, 6)) << errors.front();
  Rejected(OneRule("{hosts: [13.107.0.1/16]}"));
  Rejected(OneRule("{hosts: [a.example], src: [10.0.0.0/33]}"));
  Rejected(OneRule("{hosts: [a.example], src: [not-an-ip]}"));
}

TEST_F(DecisionLoad, BadDatesAreErrors) {
  Rejected(OneRule("{hosts: [a.example]}", "    expires: 2026-02-30\n"));
  Rejected(OneRule("{hosts: [a.example]}", "    expires: tomorrow\n"));
  Rejected(OneRule("{hosts: [a.example]}", "    expires: 2026-13-01\n"));
}

TEST_F(DecisionLoad, AllOrNothing) {
  const auto errors = Rejected(R"y(version: 1
rules:
  - id: good
    match: {hosts: [a.example]}
  - id: bad
    match: {hosts: [10.1.2.3/8]}
)y");
  EXPECT_TRUE(HasErrorOnLine(errors, 6)) << errors.front();
}

TEST_F(DecisionLoad, EveryErrorIsReported) {
  const auto errors = Rejected(R"y(version: 1
rules:
  - id: one
    match: {hosts: [10.1.2.3/8]}
  - id: two
    match: {src: [10.1.2.3/8], hosts: [a.example]}
)y");
  EXPECT_TRUE(HasErrorOnLine(errors, 4));
  EXPECT_TRUE(HasErrorOnLine(errors, 6));
}

// ---------------------------------------------------------------------------------------------
// `check` warnings (lint_policy)

class DecisionLint : public ::testing::Test {
 protected:
  // Warnings for a policy with one rule.
  static std::vector<Warning> Lint(const std::string& yaml) {
    const LoadResult result = load_policy_text(yaml, "test.yaml");
    EXPECT_TRUE(result.ok()) << Errors(result);
    if (!result.ok()) return {};
    return lint_policy(*result.policy, D(kToday));
  }
};

TEST_F(DecisionLint, ClientControlledOnlyRulesWarn) {
  EXPECT_FALSE(Lint(OneRule("{user_agent: [MSOIDCRL]}")).empty());
  EXPECT_FALSE(Lint(OneRule("{user_agent_regex: ['^Microsoft-CryptoAPI/']}")).empty());
  EXPECT_FALSE(Lint(OneRule("{path_suffix: [.crl]}")).empty());
  EXPECT_FALSE(Lint(OneRule("{path_prefix: [/pki/]}")).empty());
  EXPECT_FALSE(Lint(OneRule("{path_regex: ['^/pki/']}")).empty());
}

TEST_F(DecisionLint, ConnectAndOtherPortsWarn) {
  EXPECT_FALSE(
      Lint(OneRule("{methods: [CONNECT], ports: [443], hosts: [login.example.com]}")).empty());
  EXPECT_FALSE(Lint(OneRule("{ports: [8080], hosts: [crl.example.com]}")).empty());
}

TEST_F(DecisionLint, NarrowRuleDoesNotWarn) {
  const auto warnings = Lint(OneRule("{hosts: [crl.example.com], path_suffix: [.crl]}"));
  EXPECT_TRUE(warnings.empty()) << warnings.front().to_string();
}

TEST_F(DecisionLint, WarningFormat) {
  const auto warnings = Lint(OneRule("{path_suffix: [.crl]}"));
  ASSERT_FALSE(warnings.empty());
  const std::regex format(R"(^test\.yaml:[1-9][0-9]*:[1-9][0-9]*: warning: .+)");
  for (const Warning& w : warnings) {
    EXPECT_TRUE(std::regex_search(w.to_string(), format)) << w.to_string();
    EXPECT_EQ(w.where.file, "test.yaml");
    EXPECT_GE(w.where.line, 3);  // the rule starts on line 3
    EXPECT_LE(w.where.line, 4);
  }
}

}  // namespace
}  // namespace authbypass

namespace authbypass {
namespace {

// The caller's memo of User-Agent regex outcomes never carries an answer across policies
// or User-Agents.
TEST(EvalContextMemo, SerialsNeverLeadToAnotherText) {
  // Serials as many Request objects give them: one text under several serials, serials
  // that share a slot of the context's serial table, and entries reused for new texts.
  EvalContext ctx;
  int regex = 0;  // any address names "the regex"
  constexpr std::uint64_t kPolicy = 7;
  ctx.remember(1, "Agent/A", &regex, kPolicy, true);
  EXPECT_EQ(ctx.recall(1, "Agent/A", &regex, kPolicy), 1);
  EXPECT_EQ(ctx.recall(2, "Agent/A", &regex, kPolicy), 1);  // same text, another serial
  EXPECT_EQ(ctx.recall(2, "Agent/A", &regex, kPolicy), 1);
  // A serial sharing serial 1's slot, for another text: not A's answer.
  EXPECT_EQ(ctx.recall(1 + 64, "Agent/B", &regex, kPolicy), -1);
  ctx.remember(1 + 64, "Agent/B", &regex, kPolicy, false);
  EXPECT_EQ(ctx.recall(1 + 64, "Agent/B", &regex, kPolicy), 0);
  EXPECT_EQ(ctx.recall(1, "Agent/A", &regex, kPolicy), 1);
  // Enough new texts to reuse every entry, each with the opposite answer: the old serials
  // of A and B must not reach the entries' new texts.
  for (std::uint64_t i = 0; i < 16; ++i) {
    const std::string text = "Other/" + std::to_string(i);
    ctx.remember(1000 + i, text, &regex, kPolicy, i % 2 == 0);
    EXPECT_EQ(ctx.recall(1000 + i, text, &regex, kPolicy), i % 2 == 0 ? 1 : 0);
  }
  EXPECT_EQ(ctx.recall(1, "Agent/A", &regex, kPolicy), -1);
  EXPECT_EQ(ctx.recall(2, "Agent/A", &regex, kPolicy), -1);
  EXPECT_EQ(ctx.recall(1 + 64, "Agent/B", &regex, kPolicy), -1);
  EXPECT_EQ(ctx.recall(1015, "Other/15", &regex, kPolicy + 1), -1);  // another policy
}

TEST(DecisionUaRegexMemo, NeverCrossesPoliciesOrUserAgents) {
  auto load = [](const std::string& re) {
    LoadResult r = load_policy_text(
        "version: 1\nrules:\n  - id: r\n    match: {hosts: [a.test], user_agent_regex: ['" + re +
            "']}\n",
        "p.yaml");
    EXPECT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
    return r.policy;
  };
  auto yes = load("^Agent/1$");
  auto no = load("^Agent/2$");
  EvalContext ctx;
  Request req;
  ASSERT_TRUE(req.parse({"GET", "http://a.test/", "Agent/1", ""}));
  const Date today = today_utc();
  EXPECT_TRUE(yes->decide(req, today, ctx).bypass());
  EXPECT_TRUE(yes->decide(req, today, ctx).bypass());  // from the memo
  EXPECT_EQ(ctx.recall(req.user_agent_serial, req.user_agent,
                       &*yes->rules()[0].match.user_agent_regex[0].regex, yes->generation()),
            1);
  EXPECT_FALSE(no->decide(req, today, ctx).bypass());  // another policy: evaluated afresh
  ASSERT_TRUE(req.parse({"GET", "http://a.test/", "Agent/2", ""}));
  EXPECT_FALSE(yes->decide(req, today, ctx).bypass());
  EXPECT_TRUE(no->decide(req, today, ctx).bypass());
  ASSERT_TRUE(req.parse({"GET", "http://a.test/x", "Agent/2", ""}));  // same UA, kept
  EXPECT_TRUE(no->decide(req, today, ctx).bypass());
  // Many other User-Agents push Agent/1 out; it is evaluated afresh, right again.
  for (int i = 0; i < 20; ++i) {
    const std::string ua = "Other/" + std::to_string(i);
    ASSERT_TRUE(req.parse({"GET", "http://a.test/", ua, ""}));
    EXPECT_FALSE(yes->decide(req, today, ctx).bypass());
  }
  ASSERT_TRUE(req.parse({"GET", "http://a.test/", "Agent/1", ""}));
  EXPECT_TRUE(yes->decide(req, today, ctx).bypass());
  // Requests parsed by other Request objects (each numbering its own User-Agents) share
  // the context without mixing answers.
  for (int i = 0; i < 10; ++i) {
    Request a, b;
    ASSERT_TRUE(a.parse({"GET", "http://a.test/", i % 2 ? "Agent/1" : "Agent/2", ""}));
    ASSERT_TRUE(b.parse({"GET", "http://a.test/", i % 2 ? "Agent/2" : "Agent/1", ""}));
    EXPECT_EQ(yes->decide(a, today, ctx).bypass(), i % 2 == 1);
    EXPECT_EQ(yes->decide(b, today, ctx).bypass(), i % 2 == 0);
    const Request copy = a;  // a copy is the same User-Agent
    EXPECT_EQ(copy.user_agent_serial, a.user_agent_serial);
    EXPECT_NE(a.user_agent_serial, b.user_agent_serial);
  }
  // A policy freed and another loaded (possibly at the same address) never reuses it.
  no.reset();
  auto again = load("^Agent/1$");
  ASSERT_TRUE(req.parse({"GET", "http://a.test/", "Agent/2", ""}));
  EXPECT_FALSE(again->decide(req, today, ctx).bypass());
}

}  // namespace
}  // namespace authbypass
