#include "authbypass/policy_check.h"

#include <algorithm>

#include "authbypass/customer_hosting.h"
#include "authbypass/request.h"

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
bool lists_connect(const Match& m) {
  return std::find(m.methods.begin(), m.methods.end(), "CONNECT") != m.methods.end();
}

// The customer-hosting zones lint_customer_hosting names for entry `h` of rule `r` (none
// when the rule is shadow, or checked and without CONNECT, or `h` names no domain).
std::vector<const CustomerHostingDomain*> named_customer_zones(const Rule& r,
                                                               const HostPattern& h) {
  if (r.mode == Mode::kShadow || (!lists_connect(r.match) && r.verify != Verify::kNone)) return {};
  // IP literals name no domain; a top-level wildcard has its own warning.
  if (h.kind == HostPattern::Kind::kCidr || h.name.find('.') == std::string::npos) return {};
  return customer_hosting_zones(h.name, h.kind == HostPattern::Kind::kSuffix);
}

void lint_customer_hosting(const Rule& r, std::vector<Warning>& out) {
  const bool connect = lists_connect(r.match);
  for (const HostPattern& h : r.match.hosts) {
    auto zones = named_customer_zones(r, h);
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
  for (Warning& w : lint_wildcard_hosts(policy, today)) out.push_back(std::move(w));
  return out;
}

namespace {

bool has_path_criteria(const Match& m) {
  return !m.path_prefix.empty() || !m.path_suffix.empty() || !m.path_regex.empty();
}

// "a, b, c" of at most `max` entries, then "... (N entries)".
template <typename T, typename F>
std::string short_list(const std::vector<T>& v, F text, std::size_t max = 4) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + text(v[i]);
  if (v.size() > max) s += ", ... (" + std::to_string(v.size()) + " entries)";
  return s;
}

std::string identity(const std::string& s) {
  return s;
}

bool rule_relies_on_icap(const Rule& r, Date today) {
  return r.active(today) && r.mode == Mode::kEnforce && r.verify != Verify::kNone;
}

}  // namespace

std::vector<Warning> lint_wildcard_hosts(const Policy& policy, Date today) {
  std::vector<Warning> out;
  for (const Rule& r : policy.rules()) {
    const Match& m = r.match;
    if (!r.active(today) || r.mode != Mode::kEnforce || has_path_criteria(m)) continue;
    // A tunnel has no path to constrain: lint_policy's CONNECT warning covers it.
    if (m.method_bits == method_bit("CONNECT")) continue;
    for (const HostPattern& h : m.hosts) {
      // A whole top-level domain has its own warning in lint_policy.
      if (h.kind != HostPattern::Kind::kSuffix || h.name.find('.') == std::string::npos) continue;
      // An entry in a customer-hosting domain is named by lint_customer_hosting already.
      if (!named_customer_zones(r, h).empty()) continue;
      out.push_back(Warning{
          r.where, "rule '" + r.id + "': hosts entry '" + h.text + "' covers " + h.name +
                       " and every host under it, for any path (a web site or download host there "
                       "skips authentication too): list the host names this rule is for, or add "
                       "path_prefix/path_suffix."});
    }
  }
  return out;
}

std::vector<Warning> unprotected_without_icap(const Policy& policy, Date today) {
  std::vector<Warning> out;
  for (const Rule& r : policy.rules()) {
    if (!rule_relies_on_icap(r, today)) continue;
    const Match& m = r.match;
    std::string what =
        m.hosts.empty()
            ? std::string("any host")
            : "hosts " + short_list(m.hosts, [](const HostPattern& h) { return h.text; });
    what += ", " + short_list(m.methods, identity, 8) + " on port" +
            (m.ports.size() == 1 ? " " : "s ") +
            short_list(
                m.ports, [](std::uint16_t p) { return std::to_string(p); }, 8);
    if (!m.path_prefix.empty()) what += ", paths under " + short_list(m.path_prefix, identity);
    if (!m.path_suffix.empty()) what += ", paths ending in " + short_list(m.path_suffix, identity);
    if (!m.path_regex.empty())
      what += ", paths matching " +
              short_list(m.path_regex, [](const RegexPattern& p) { return "'" + p.text + "'"; });
    if (!m.user_agent.empty() || !m.user_agent_regex.empty()) what += ", the rule's User-Agents";
    out.push_back(Warning{
        r.where, "rule '" + r.id + "': verify: " + std::string(to_string(r.verify)) +
                     " is not enforced without the ICAP service: whatever the origin answers (" +
                     what +
                     ") reaches clients without credentials unchecked, a program included. "
                     "Deploy the ICAP service (the ICAP lines of `authbypass squid-config` and "
                     "the c-icap include) or remove the rule."});
  }
  return out;
}

std::string icap_dependency_note(const Policy& policy, Date today) {
  std::vector<std::string> ids;
  for (const Rule& r : policy.rules())
    if (rule_relies_on_icap(r, today)) ids.push_back(r.id);
  if (ids.empty()) return {};
  return "note: " + std::to_string(ids.size()) + (ids.size() == 1 ? " rule" : " rules") + " (" +
         short_list(ids, identity, 16) +
         (ids.size() == 1 ? ") relies on the ICAP service for its verify check; without it, it "
                            "delivers"
                          : ") rely on the ICAP service for their verify check; without it they "
                            "deliver") +
         " whatever the origin sends. 'authbypass check --no-icap " + policy.file() +
         "' lists what each lets through then.";
}

}  // namespace authbypass
