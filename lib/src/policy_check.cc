#include "authbypass/policy_check.h"

#include <algorithm>

#include "authbypass/customer_hosting.h"

namespace authbypass {

std::string Warning::to_string() const { return where.to_string() + ": warning: " + message; }

TestReport run_policy_tests(const Policy& policy, Date today) {
  TestReport report;
  Request req;
  for (const PolicyTest& t : policy.tests()) {
    TestResult res;
    res.test = &t;
    req.parse(RequestInput{t.method, t.url, t.user_agent, t.src});
    Decision d = policy.decide(req, t.date.value_or(today));
    std::string got = d.bypass() ? "bypass (rule " + d.rule->id + ")"
                                 : "authenticate (" + std::string(d.reason) +
                                       (req.ok() ? "" : ": " + std::string(req.error())) + ")";
    std::vector<std::string> failures;
    if (d.bypass() != t.expect_bypass) {
      failures.push_back(std::string("expected ") + (t.expect_bypass ? "bypass" : "authenticate") +
                         ", got " + got);
    } else if (t.expect_rule && (!d.rule || d.rule->id != *t.expect_rule)) {
      failures.push_back("expected rule " + *t.expect_rule + " to decide, got " + got);
    }
    if (t.expect_shadow) {
      std::vector<std::string> shadow;
      for (std::size_t i = 0; i < d.shadow_count; ++i) shadow.push_back(d.shadow[i]->id);
      std::vector<std::string> want = *t.expect_shadow;
      std::sort(shadow.begin(), shadow.end());
      std::sort(want.begin(), want.end());
      if (shadow != want) {
        auto list = [](const std::vector<std::string>& v) {
          std::string s;
          for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
          return "[" + s + "]";
        };
        failures.push_back("expected shadow matches " + list(want) + ", got " + list(shadow));
      }
    }
    res.passed = failures.empty();
    for (const auto& f : failures) res.failure += (res.failure.empty() ? "" : "; ") + f;
    (res.passed ? report.passed : report.failed)++;
    report.results.push_back(std::move(res));
  }
  return report;
}

namespace {

// An enforce rule that opens a CONNECT tunnel, or bypasses with nothing checked (verify: none), to
// a host in (or a wildcard above) a customer-hosting domain: one warning per such hosts
// entry, naming the host and the domain.
void lint_customer_hosting(const Rule& r, std::vector<Warning>& out) {
  const Match& m = r.match;
  const bool connect = std::find(m.methods.begin(), m.methods.end(), "CONNECT") != m.methods.end();
  if (r.mode == Mode::kShadow || (!connect && r.verify != Verify::kNone)) return;
  for (const HostPattern& h : m.hosts) {
    // IP literals name no domain; a top-level wildcard has its own warning.
    if (h.kind == HostPattern::Kind::kCidr || h.name.find('.') == std::string::npos) continue;
    const bool wildcard = h.kind == HostPattern::Kind::kSuffix;
    auto zones = customer_hosting_zones(h.name, wildcard);
    if (zones.empty()) continue;
    std::string where =
        "." + std::string(zones.front()->domain) + " (" + std::string(zones.front()->service) + ")";
    if (zones.size() > 1) where += " and " + std::to_string(zones.size() - 1) + " more";
    out.push_back(Warning{
        r.where, "rule '" + r.id +
                     "': " + (connect ? "CONNECT to '" : "unchecked bypass (verify: none) to '") +
                     h.text + "', " +
                     (zones.front()->domain.size() > h.name.size() ? "which covers" : "in") +
                     " the customer-hosting domain " + where +
                     ": any customer of that service can host there, so " +
                     (connect ? "the tunnel reaches servers anyone can run"
                              : "anyone's content passes unauthenticated")});
  }
}

}  // namespace

std::vector<Warning> lint_policy(const Policy& policy, Date today) {
  std::vector<Warning> out;
  for (const Rule& r : policy.rules()) {
    const Match& m = r.match;
    auto warn = [&](const std::string& msg) { out.push_back(Warning{r.where, "rule '" + r.id + "': " + msg}); };
    bool client_data = !m.user_agent.empty() || !m.user_agent_regex.empty() ||
                       !m.path_prefix.empty() || !m.path_suffix.empty() || !m.path_regex.empty();
    if (client_data && m.hosts.empty()) {
      warn("matches on client-controlled data alone (user_agent/path without hosts): any "
           "client can send it to any server" +
           std::string(r.verify == Verify::kNone && r.mode == Mode::kEnforce ? "; consider 'verify' so the ICAP service "
                                                   "checks what comes back"
                                                 : ""));
    }
    // A CONNECT-only rule on port 443 is one finding (a tunnel), not two.
    const bool tunnel_only = m.methods == std::vector<std::string>{"CONNECT"} &&
                             m.ports == std::vector<std::uint16_t>{443};
    if (std::find(m.methods.begin(), m.methods.end(), "CONNECT") != m.methods.end())
      warn(std::string("allows CONNECT") + (tunnel_only ? " to port 443" : "") +
           ": an opaque tunnel whose content cannot be checked");
    for (std::uint16_t p : m.ports)
      if (p != 80 && !tunnel_only)
        warn("allows port " + std::to_string(p) + " (revocation data is served on port 80)");
    for (const HostPattern& h : m.hosts) {
      if (h.kind == HostPattern::Kind::kSuffix && h.name.find('.') == std::string::npos)
        warn("hosts entry '" + h.text + "' covers a whole top-level domain");
      if (h.kind == HostPattern::Kind::kCidr &&
          h.cidr.prefix < (h.cidr.base.v6 ? 32 : 16))
        warn("hosts entry '" + h.text + "' is a very wide address block");
    }
    lint_customer_hosting(r, out);
    if (r.expires) {
      if (!r.active(today)) {
        warn("expired on " + format_date(*r.expires) + " and is inactive");
      } else if (*r.expires - today <= std::chrono::days{30}) {
        warn("expires on " + format_date(*r.expires) + " (in " +
             std::to_string((*r.expires - today).count()) + " days)");
      }
    }
  }
  return out;
}

}  // namespace authbypass
