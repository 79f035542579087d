#include "authbypass/policy.h"

#include <algorithm>
#include <cstdio>

#include "compiled_regex.h"
#include "host_matcher.h"
#include "text.h"

namespace authbypass {

Date today_utc() {
  return std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
}

std::optional<Date> parse_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int y = 0, m = 0, d = 0;
  for (std::size_t i = 0; i < 10; ++i) {
    if (i == 4 || i == 7) continue;
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    int digit = s[i] - '0';
    if (i < 4) {
      y = y * 10 + digit;
    } else if (i < 7) {
      m = m * 10 + digit;
    } else {
      d = d * 10 + digit;
    }
  }
  std::chrono::year_month_day ymd{std::chrono::year{y},
                                  std::chrono::month{static_cast<unsigned>(m)},
                                  std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return Date{ymd};
}

std::string format_date(Date d) {
  std::chrono::year_month_day ymd{d};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string SourceLocation::to_string() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string_view to_string(Mode m) {
  return m == Mode::kShadow ? "shadow" : "enforce";
}

std::string_view to_string(Verify v) {
  switch (v) {
    case Verify::kNone:
      return "none";
    case Verify::kCrl:
      return "crl";
    case Verify::kOcsp:
      return "ocsp";
    case Verify::kCert:
      return "cert";
    case Verify::kCtl:
      return "ctl";
    case Verify::kRevocation:
      return "revocation";
  }
  return "none";
}

bool HostPattern::matches(const Request& req) const {
  switch (kind) {
    case Kind::kCidr:
      return req.host_kind != HostKind::kName && cidr.contains(req.host_ip);
    case Kind::kExact:
      return req.host_kind == HostKind::kName && req.host == name;
    case Kind::kSuffix: {
      if (req.host_kind != HostKind::kName) return false;
      std::string_view h = req.host;
      if (h == name) return true;
      return h.size() > name.size() && h.ends_with(name) && h[h.size() - name.size() - 1] == '.';
    }
  }
  return false;
}

Policy::Policy() : index_(std::make_unique<HostIndex>()) {}
Policy::~Policy() = default;

const Rule* Policy::find_rule(std::string_view id) const {
  for (const Rule& r : rules_)
    if (r.id == id) return &r;
  return nullptr;
}

bool Policy::methods_match(const Rule& r, const Request& req) const {
  if (req.method_bit != 0) return (r.match.method_bits & req.method_bit) != 0;
  // An uncommon method (or a Request not made by parse()): compare the names.
  return std::find(r.match.methods.begin(), r.match.methods.end(), req.method) !=
         r.match.methods.end();
}

bool Policy::ports_match(const Rule& r, const Request& req) const {
  return std::find(r.match.ports.begin(), r.match.ports.end(), req.port) != r.match.ports.end();
}

bool Policy::hosts_match(const Rule& r, const Request& req) const {
  if (r.match.hosts.empty()) return true;
  return std::any_of(r.match.hosts.begin(), r.match.hosts.end(),
                     [&](const HostPattern& p) { return p.matches(req); });
}

bool Policy::src_match(const Rule& r, const Request& req) const {
  if (r.match.src.empty()) return true;
  if (!req.src) return false;
  return std::any_of(r.match.src.begin(), r.match.src.end(),
                     [&](const Cidr& c) { return c.contains(*req.src); });
}

namespace {

// True iff any pattern holds; a faulting pattern counts as no match and sets *fault.
template <typename Eval>
bool any_regex(const std::vector<RegexPattern>& patterns, bool* fault, Eval eval) {
  for (const RegexPattern& p : patterns) {
    switch (eval(*p.regex)) {
      case Regex::Result::kMatch:
        return true;
      case Regex::Result::kFault:
        if (fault) *fault = true;
        break;
      case Regex::Result::kNoMatch:
        break;
    }
  }
  return false;
}

}  // namespace

bool Policy::path_match(const Rule& r, const Request& req, bool* regex_fault) const {
  const Match& m = r.match;
  if (m.path_prefix.empty() && m.path_suffix.empty() && m.path_regex.empty()) return true;
  if (!req.match_path_ok) return false;
  std::string_view p = req.match_path;
  if (!m.path_prefix.empty() &&
      std::none_of(m.path_prefix.begin(), m.path_prefix.end(),
                   [&](const std::string& s) { return text::starts_with(p, s); }))
    return false;
  if (!m.path_suffix.empty()) {
    bool any = false;
    for (const std::string& s : m.path_suffix) {
      if (text::ends_with(p, s)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  if (!m.path_regex.empty()) {
    bool fault = false;
    bool ok = any_regex(m.path_regex, &fault, [&](const Regex& re) { return re.full_match(p); });
    if (fault) {
      regex_faults_.fetch_add(1, std::memory_order_relaxed);
      if (regex_fault) *regex_fault = true;
    }
    if (!ok) return false;
  }
  return true;
}

bool Policy::user_agent_match(const Rule& r, const Request& req, bool* regex_fault) const {
  return user_agent_match(r, req, regex_fault, nullptr);
}

bool Policy::user_agent_match(const Rule& r, const Request& req, bool* regex_fault,
                              EvalContext* ctx) const {
  const Match& m = r.match;
  if (!m.user_agent.empty() &&
      std::none_of(m.user_agent.begin(), m.user_agent.end(), [&](const std::string& s) {
        return req.user_agent_lower.find(s) != std::string_view::npos;
      }))
    return false;
  if (!m.user_agent_regex.empty()) {
    bool fault = false;
    bool ok = any_regex(m.user_agent_regex, &fault, [&](const Regex& re) {
      if (ctx != nullptr) {
        if (const int known = ctx->recall(req.user_agent_serial, req.user_agent, &re, generation_);
            known >= 0)
          return known != 0 ? Regex::Result::kMatch : Regex::Result::kNoMatch;
      }
      Regex::Result res = re.search(req.user_agent);
      if (ctx != nullptr && res != Regex::Result::kFault)  // faults: counted every time
        ctx->remember(req.user_agent_serial, req.user_agent, &re, generation_,
                      res == Regex::Result::kMatch);
      return res;
    });
    if (fault) {
      regex_faults_.fetch_add(1, std::memory_order_relaxed);
      if (regex_fault) *regex_fault = true;
    }
    if (!ok) return false;
  }
  return true;
}

bool Policy::rule_matches_except_hosts(const Rule& r, const Request& req, bool* fault,
                                       EvalContext* ctx) const {
  // Cheapest criteria first, inline; the calls only for criteria the rule has.
  const Match& m = r.match;
  if (req.method_bit != 0 ? (m.method_bits & req.method_bit) == 0 : !methods_match(r, req))
    return false;
  bool port_ok = false;  // a plain loop: rules list one or two ports
  for (std::uint16_t p : m.ports) port_ok |= p == req.port;
  if (!port_ok) return false;
  if (!m.src.empty() && !src_match(r, req)) return false;
  if ((!m.path_prefix.empty() || !m.path_suffix.empty() || !m.path_regex.empty()) &&
      !path_match(r, req, fault))
    return false;
  if ((!m.user_agent.empty() || !m.user_agent_regex.empty()) &&
      !user_agent_match(r, req, fault, ctx))
    return false;
  return true;
}

Decision Policy::decide(const Request& req, Date today) const {
  return decide_impl(req, today, nullptr);
}

Decision Policy::decide_impl(const Request& req, Date today, EvalContext* ctx) const {
  Decision d;
  if (!req.ok()) {
    d.reason = "malformed request";
    return d;
  }

  constexpr std::size_t kCap = 256;
  std::uint32_t host_hits[kCap];
  std::size_t n_hits = index_->lookup(req, host_hits, kCap);
  const bool scan_all = n_hits == SIZE_MAX;  // too many host hits: check every rule

  auto consider = [&](const Rule& r) {
    if (!r.active(today)) return;
    if (r.mode == Mode::kEnforce && d.rule != nullptr) return;  // first enforce rule wins
    if (scan_all && !hosts_match(r, req)) return;
    if (!rule_matches_except_hosts(r, req, &d.regex_fault, ctx)) return;
    if (r.mode == Mode::kEnforce) {
      d.rule = &r;
    } else if (d.shadow_count < Decision::kMaxShadow) {
      d.shadow[d.shadow_count++] = &r;
    } else {
      d.shadow_truncated = true;
    }
  };

  if (scan_all) {
    for (const Rule& r : rules_) consider(r);
  } else {
    // Merge, in file order, the rules whose hosts matched and the rules without hosts.
    std::size_t i = 0;
    std::size_t j = 0;
    const std::size_t n_open = hostless_.size();
    while (i < n_hits || j < n_open) {
      std::uint32_t next;
      if (j == n_open || (i < n_hits && host_hits[i] < hostless_[j])) {
        next = host_hits[i++];
      } else {
        next = hostless_[j++];
      }
      consider(rules_[next]);
      if (d.rule != nullptr && next >= last_shadow_) break;  // nothing left to report
    }
  }

  if (d.rule != nullptr) {
    d.verdict = Verdict::kBypass;
  } else {
    d.reason = "no rule matched";
  }
  return d;
}

}  // namespace authbypass
