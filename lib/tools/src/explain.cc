#include "authbypass/explain.h"

#include <algorithm>

namespace authbypass {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

template <typename T, typename F>
std::string join_map(const std::vector<T>& v, F f) {
  std::vector<std::string> s;
  s.reserve(v.size());
  for (const auto& e : v) s.push_back(f(e));
  return join(s);
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// The path, ;params, query and fragment as the URL has them (the path alone for a URL
// without them).
std::string_view sent_path(const Request& req) {
  std::string_view u = req.url;
  const std::size_t scheme = u.find("://");
  if (scheme == std::string_view::npos) return req.path;
  const std::size_t slash = u.find_first_of("/?#;", scheme + 3);
  return slash == std::string_view::npos ? req.path : u.substr(slash);
}

}  // namespace

int RuleExplanation::failed() const {
  return static_cast<int>(std::count_if(checks.begin(), checks.end(),
                                        [](const CriterionCheck& c) { return !c.ok; }));
}

std::vector<const RuleExplanation*> Explanation::nearest(std::size_t max_nearest) const {
  std::vector<const RuleExplanation*> out;
  for (const auto& r : rules) {
    if (decision.rule == r.rule) continue;
    bool is_shadow_hit = false;
    for (std::size_t i = 0; i < decision.shadow_count; ++i)
      is_shadow_hit = is_shadow_hit || decision.shadow[i] == r.rule;
    if (is_shadow_hit) continue;
    out.push_back(&r);
  }
  std::stable_sort(out.begin(), out.end(), [](const RuleExplanation* a, const RuleExplanation* b) {
    return a->failed() < b->failed();
  });
  if (out.size() > max_nearest) out.resize(max_nearest);
  return out;
}

Explanation explain(const Policy& policy, const Request& req, Date today) {
  Explanation ex;
  ex.decision = policy.decide(req, today);
  for (const Rule& r : policy.rules()) {
    RuleExplanation re;
    re.rule = &r;
    auto add = [&](std::string criterion, bool ok, std::string detail) {
      re.checks.push_back(CriterionCheck{std::move(criterion), ok, std::move(detail)});
    };
    const Match& m = r.match;

    if (!req.ok()) {
      add("request", false, "the request is malformed (" + std::string(req.error()) +
                                "), so no rule can match");
      ex.rules.push_back(std::move(re));
      continue;
    }

    if (r.active(today)) {
      if (r.expires)
        add("active", true, "rule is in force until " + format_date(*r.expires) + " (exclusive)");
    } else {
      add("active", false, "rule expired on " + format_date(*r.expires));
    }

    {
      bool ok = policy.methods_match(r, req);
      std::string allowed =
          join(m.methods) + (m.methods_defaulted ? ", the default when 'methods' is absent" : "");
      add("method", ok,
          ok ? "method " + req.method + " is allowed (this rule allows " + allowed + ")"
             : "method " + req.method + " is not allowed; this rule allows " + allowed);
    }
    {
      bool ok = policy.ports_match(r, req);
      std::string allowed =
          join_map(m.ports, [](std::uint16_t p) { return std::to_string(p); }) +
          (m.ports_defaulted ? ", the default when 'ports' is absent" : "");
      add("port", ok,
          ok ? "port " + std::to_string(req.port) + " is allowed (this rule allows " + allowed + ")"
             : "port " + std::to_string(req.port) + " is not allowed; this rule allows " + allowed);
    }
    if (!m.hosts.empty()) {
      const HostPattern* hit = nullptr;
      for (const auto& h : m.hosts)
        if (!hit && h.matches(req)) hit = &h;
      // Whole entries only, so a shortened list never shows an entry that is not there.
      std::string entries;
      for (const HostPattern& h : m.hosts) {
        if (entries.size() > 200) {
          entries += ", ... (" + std::to_string(m.hosts.size()) + " entries)";
          break;
        }
        entries += (entries.empty() ? "" : ", ") + h.text;
      }
      add("host", hit != nullptr,
          hit ? "host " + req.host + " matches " + quoted(hit->text)
              : "host " + req.host + " is not in hosts [" + entries + "]" +
                    (req.host_kind != HostKind::kName ? " (an IP literal only matches IP/CIDR entries)" : ""));
    }
    if (!m.src.empty()) {
      bool ok = policy.src_match(r, req);
      std::string entries = join_map(m.src, [](const Cidr& c) { return c.to_string(); });
      std::string who = req.src ? "client " + req.src->to_string() : std::string("an unknown client");
      add("src", ok, ok ? who + " is in src [" + entries + "]"
                        : who + " is not in src [" + entries + "]");
    }
    if (!m.path_prefix.empty() || !m.path_suffix.empty() || !m.path_regex.empty()) {
      bool fault = false;
      bool ok = policy.path_match(r, req, &fault);
      std::string what;
      if (!m.path_prefix.empty()) what += " path_prefix [" + join(m.path_prefix) + "]";
      if (!m.path_suffix.empty()) what += " path_suffix [" + join(m.path_suffix) + "]";
      if (!m.path_regex.empty())
        what += " path_regex [" + join_map(m.path_regex, [](const RegexPattern& p) { return p.text; }) + "]";
      std::string detail;
      if (req.is_connect) {
        detail = "a CONNECT request has no path (it opens a tunnel to " + req.host + ":" +
                 std::to_string(req.port) + ")";
      } else if (!req.match_path_ok) {
        detail = "path " + quoted(sent_path(req)) + " is never matched: " +
                 (req.match_path_why != nullptr ? req.match_path_why : "it cannot be read safely") +
                 " (a path that readers may resolve differently never matches path_* criteria)";
      } else {
        detail = "path " + quoted(req.match_path) + (ok ? " matches" : " does not match") + what;
        if (req.match_path != req.path) detail += " (as sent: " + quoted(req.path) + ")";
        if (!req.query.empty()) detail += "; the query is never matched";
      }
      if (fault) detail += "; a regex gave up (input over 1024 bytes, or too complex) and counts as no match";
      add("path", ok, detail);
    }
    if (!m.user_agent.empty() || !m.user_agent_regex.empty()) {
      bool fault = false;
      bool ok = policy.user_agent_match(r, req, &fault);
      std::string what;
      if (!m.user_agent.empty())
        what += " user_agent [" + join(m.user_agent) + "]";
      if (!m.user_agent_regex.empty())
        what += " user_agent_regex [" +
                join_map(m.user_agent_regex, [](const RegexPattern& p) { return p.text; }) + "]";
      std::string ua = req.user_agent.empty() ? std::string("(none)") : quoted(req.user_agent);
      std::string detail = "User-Agent " + ua + (ok ? " matches" : " does not match") + what;
      if (fault) detail += "; a regex gave up (input over 1024 bytes, or too complex) and counts as no match";
      add("user_agent", ok, detail);
    }
    re.matched = re.failed() == 0;
    ex.rules.push_back(std::move(re));
  }
  return ex;
}

}  // namespace authbypass
