#include "authbypass/squid_config.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "authbypass/icap_request.h"
#include "authbypass/policy_check.h"
#include "compiled_regex.h"

namespace authbypass {

namespace {

// A literal as a POSIX extended regex for Squid (spaces as [[:space:]]: config tokens
// are space-separated).
std::string regex_literal(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ' ') {
      out += "[[:space:]]";
    } else if (std::string_view("\\.^$|?*+()[]{}").find(c) != std::string_view::npos) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

// Squid's config has no comments inside values and no line continuations in ACL values.
bool safe_token(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '"' || c == '#' || c == '\\' ||
        static_cast<unsigned char>(c) >= 0x7f)
      return false;
  }
  return !s.empty();
}

// Emits "acl NAME TYPE values..." wrapped at about 100 columns: repeated lines of a value
// ACL (and of any-of) add alternatives. Never use it for all-of: Squid ORs the lines of an
// all-of ACL, so a wrapped all-of would match far more than meant (see all_of_line).
void acl_lines(std::string& out, const std::string& name, std::string_view type,
               const std::vector<std::string>& values) {
  std::string line;
  auto start = [&] { line = "acl " + name + " " + std::string(type); };
  start();
  std::size_t in_line = 0;
  for (const std::string& v : values) {
    if (in_line > 0 && line.size() + 1 + v.size() > 100) {
      out += line + "\n";
      start();
      in_line = 0;
    }
    line += " " + v;
    ++in_line;
  }
  out += line + "\n";
}

// One "acl NAME all-of A B ..." line, however long: every member must hold.
void all_of_line(std::string& out, const std::string& name, const std::vector<std::string>& acls) {
  out += "acl " + name + " all-of";
  for (const std::string& a : acls) out += " " + a;
  out += "\n";
}

// The per-rule prefilter ACLs and `authbypass_candidates` (any of them), and
// `authbypass_candidate_urls` (the rules' hosts and paths alone). Without `candidates`,
// only what the URL ACLs need.
void prefilter_acls(const Policy& policy, SquidConfig& cfg, const std::string& consumer,
                    bool candidates = true) {
  std::string& t = cfg.text;
  std::vector<std::string> rule_acls, url_acls;
  bool url_all = false;  // a rule with neither hosts nor paths: its URLs are any URL
  for (const Rule& r : policy.rules()) {
    const Match& m = r.match;
    const std::string base = "ab_" + r.id;
    std::vector<std::string> parts;
    t += "# rule " + r.id + (r.mode == Mode::kShadow ? " (shadow)" : "") + "\n";

    // Hosts: names (dropping those a suffix entry of the same rule covers) and IPs.
    std::vector<std::string> names, ips;
    std::set<std::string> suffixes;
    for (const HostPattern& h : m.hosts) {
      if (h.kind == HostPattern::Kind::kSuffix) suffixes.insert(h.name);
    }
    // True if a suffix entry of this rule covers a parent domain of `name`.
    auto covered = [&](const std::string& name) {
      for (std::string_view n = name;;) {
        std::size_t dot = n.find('.');
        if (dot == std::string_view::npos) return false;
        n.remove_prefix(dot + 1);
        if (suffixes.count(std::string(n))) return true;
      }
    };
    for (const HostPattern& h : m.hosts) {
      switch (h.kind) {
        case HostPattern::Kind::kExact:
          if (!suffixes.count(h.name) && !covered(h.name)) names.push_back(h.name);
          break;
        case HostPattern::Kind::kSuffix:
          if (!covered(h.name)) names.push_back("." + h.name);
          break;
        case HostPattern::Kind::kCidr:
          ips.push_back(h.cidr.to_string());
          break;
      }
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    if (!names.empty() && !ips.empty()) {
      acl_lines(t, base + "_names", "dstdomain -n", names);
      acl_lines(t, base + "_ips", "dst -n", ips);
      acl_lines(t, base + "_hosts", "any-of", {base + "_names", base + "_ips"});
      parts.push_back(base + "_hosts");
    } else if (!names.empty()) {
      acl_lines(t, base + "_hosts", "dstdomain -n", names);
      parts.push_back(base + "_hosts");
    } else if (!ips.empty()) {
      acl_lines(t, base + "_hosts", "dst -n", ips);
      parts.push_back(base + "_hosts");
    }

    if (candidates) {
      acl_lines(t, base + "_method", "method", m.methods);
      parts.push_back(base + "_method");
      std::vector<std::string> ports;
      for (auto p : m.ports) ports.push_back(std::to_string(p));
      acl_lines(t, base + "_port", "port", ports);
      parts.push_back(base + "_port");
    }
    if (candidates && !m.src.empty()) {
      std::vector<std::string> src;
      for (const Cidr& c : m.src) src.push_back(c.to_string());
      acl_lines(t, base + "_src", "src", src);
      parts.push_back(base + "_src");
    }

    // Paths: suffixes and prefixes as regexes on Squid's raw URL path; path_regex is not
    // translated (Boost perl syntax), so a rule with one gets no path prefilter at all.
    std::vector<std::string> path_res;
    if (m.path_regex.empty()) {
      for (const std::string& s : m.path_suffix) path_res.push_back(regex_literal(s));
      if (m.path_suffix.empty()) {
        for (const std::string& s : m.path_prefix) path_res.push_back("^" + regex_literal(s));
      }
    }
    if (!path_res.empty()) {
      acl_lines(t, base + "_path", "urlpath_regex -i", path_res);
      parts.push_back(base + "_path");
    }

    // User agents: literals as they are; regexes only through their required literal start.
    std::vector<std::string> ua_res;
    bool ua_ok = true;
    for (const std::string& s : m.user_agent) ua_res.push_back(regex_literal(s));
    if (!m.user_agent.empty() && !m.user_agent_regex.empty()) {
      // Both must hold: the literal alone is a valid (wider) prefilter.
    } else {
      for (const RegexPattern& p : m.user_agent_regex) {
        const std::string& lit = p.regex->required_prefix();
        if (lit.empty()) {
          ua_ok = false;
          break;
        }
        ua_res.push_back("^" + regex_literal(lit));
      }
    }
    if (candidates && ua_ok && !ua_res.empty()) {
      acl_lines(t, base + "_ua", "browser -i", ua_res);
      parts.push_back(base + "_ua");
    }

    if (candidates) {
      if (m.hosts.empty() && path_res.empty() && (!ua_ok || ua_res.empty()) && m.src.empty()) {
        cfg.warnings.push_back("rule '" + r.id +
                               "': no criterion Squid can prefilter on (only methods/ports); "
                               "most requests will reach " +
                               consumer);
      }
      all_of_line(t, base, parts);
      rule_acls.push_back(base);
    }

    // The URLs the rule could bypass, whoever asks (hosts and paths only). A shadow rule
    // never bypasses.
    std::vector<std::string> url_parts;
    if (!m.hosts.empty()) url_parts.push_back(base + "_hosts");
    if (!path_res.empty()) url_parts.push_back(base + "_path");
    if (r.mode == Mode::kShadow) {
      // nothing: a shadow rule's URLs may be cached
    } else if (url_parts.empty()) {
      url_all = true;
    } else if (url_parts.size() == 1) {
      url_acls.push_back(url_parts.front());
    } else {
      all_of_line(t, base + "_url", url_parts);
      url_acls.push_back(base + "_url");
    }
    t += "\n";
  }
  for (const std::string& name : rule_acls) {
    if (!safe_token(name)) cfg.warnings.push_back("ACL name '" + name + "' is not a safe token");
  }

  if (candidates) {
    t += "# Candidates: a request any rule could match. Only these reach " + consumer + ".\n";
    if (rule_acls.empty()) {
      t += "acl authbypass_candidates any-of none\n";
    } else {
      acl_lines(t, "authbypass_candidates", "any-of", rule_acls);
    }
  }
  t += "# Candidate URLs: the hosts and paths of the candidates, whatever the method, port,\n"
       "# User-Agent or client (Squid's cache keeps nothing for them, whoever asks).\n";
  if (url_all) {
    acl_lines(t, "authbypass_candidate_urls", "any-of", {"all"});
    cfg.warnings.push_back(
        "a rule with neither hosts nor paths can bypass any URL: Squid's cache is off for "
        "every URL (cache deny authbypass_candidate_urls)");
  } else if (url_acls.empty()) {
    t += "acl authbypass_candidate_urls any-of none\n";
  } else {
    acl_lines(t, "authbypass_candidate_urls", "any-of", url_acls);
  }
}

// Squid's cache and partial responses. srv_authbypass checks a bypassed response on its
// way from the origin (respmod_precache): a cache hit, a revalidated (304) cached object
// and a 206 slice that Squid cuts out of a whole object never pass that check for the
// delivery. These lines keep every bypassed delivery a full, checked response from the
// origin. Every ACL used is fast and needs no lookup.
constexpr std::string_view kRangeAcl = "authbypass_range";

// The ACL for requests that ask for part of an object (Range, its legacy spelling
// Request-Range, If-Range). Such a request never skips authentication.
void range_acl(std::string& t) {
  t += "# A request for part of an object never skips authentication: Squid may cut the\n"
       "# slice out of a whole response (cached, or checked as a whole when\n"
       "# range_offset_limit is set), and a slice of revocation data is not revocation data.\n";
  // One req_header ACL per header (Squid refuses one ACL over several headers).
  t += "acl authbypass_hdr_range req_header Range .\n"
       "acl authbypass_hdr_request_range req_header Request-Range .\n"
       "acl authbypass_hdr_if_range req_header If-Range .\n"
       "acl " +
       std::string(kRangeAcl) +
       " any-of authbypass_hdr_range authbypass_hdr_request_range authbypass_hdr_if_range\n";
}

// No cache lookup (hit, revalidation) and no storing for `acl`'s requests; `who` names
// them in the comment (one line). Squid skips its `cache` rules for a request it deems
// uncacheable (Cache-Control: no-store, a Host header that differs from the URL's) yet
// still serves it a hit: send_hit covers that, except for a negatively cached answer
// (negative_ttl), which only nothing stored for those URLs at all prevents.
void cache_deny(std::string& t, std::string_view acl, std::string_view who) {
  t += "# Squid's cache: " + std::string(who) +
       ":\n"
       "# never a cache hit nor a revalidated cached copy (each goes to the origin and through\n"
       "# the ICAP check), never stored. Cost: Squid caches none of these responses.\n"
       "# send_hit: Squid skips `cache` rules for a request it deems uncacheable (a client's\n"
       "# Cache-Control: no-store, a Host header other than the URL's) but would still answer\n"
       "# it from its cache.\n"
       "cache deny " +
       std::string(acl) + "\nsend_hit deny " + std::string(acl) + "\n";
}

// Squid's ICAP connection budget: at most this many connections per icap_service line
// (max-conn=, whatever the service advertises), so at most kIcapConnections plus one
// OPTIONS connection per line in all. The shipped c-icap include runs more threads than
// that (docs/scaling.md "c-icap sizing"): a connection c-icap has no thread for waits
// until an idle keep-alive connection times out (KeepAliveTimeout), stalling every
// bypassed request. Transactions past the budget wait in Squid's queue (on-overload=wait).
constexpr int kIcapConnections = 40;

// One icap_service line: the budget share and the overload behaviour before the URL.
std::string icap_service(std::string_view name, std::string_view point, bool bypass, int max_conn,
                         const std::string& url) {
  return "icap_service " + std::string(name) + " " + std::string(point) +
         (bypass ? " bypass=1" : " bypass=0") + " max-conn=" + std::to_string(max_conn) +
         " on-overload=wait " + url + "\n";
}

void icap_common(std::string& t) {
  t += "icap_enable on\nicap_preview_enable on\nicap_preview_size 1024\n"
         "icap_service_revival_delay 10\n"
       "icap_send_client_ip on\nicap_send_client_username on\n"
       "icap_client_username_encode on\n";
  t += "# Never suspend the service for failed transactions: a late rejection (the service\n"
       "# cuts an impostor's transfer by closing the ICAP connection) counts as a failure in\n"
       "# Squid, so with the default limit (10 per OPTIONS period, one hour) any client could\n"
       "# suspend the service for everyone by fetching a few impostors. Unreachable c-icap\n"
       "# still fails each request (closed). This directive applies to every ICAP service\n"
       "# of this Squid.\n"
       "icap_service_failure_limit -1\n";
}

// Decision mode (docs/architecture.md "ICAP service"), checked on Squid 5.7 + c-icap 0.5.10.
SquidConfig squid_config_icap(const Policy& policy, const SquidConfigOptions& o) {
  std::string why;
  if (!icap::parse_shared_secret(o.secret, &why))
    throw std::invalid_argument("the shared secret " + why);
  if (!o.previous_secret.empty() && !icap::parse_shared_secret(o.previous_secret, &why))
    throw std::invalid_argument("the previous shared secret " + why);
  if (!safe_token(o.clients)) throw std::invalid_argument("bad clients ACL name '" + o.clients + "'");
  if (o.icap_url.empty() || !safe_token(o.icap_url))
    throw std::invalid_argument("decision mode needs an ICAP service URL");

  SquidConfig cfg;
  std::string& t = cfg.text;
  t += "# authbypass, ICAP decision mode: Squid drop-in generated by\n"
       "# `authbypass squid-config --mode icap` from " +
       policy.file() + " (policy sha256\n# " + policy.sha256() +
       ").\n"
       "# srv_authbypass (c-icap: authbypass.Mode both, the same policy and the same\n"
       "# authbypass.SharedSecretFile) decides in REQMOD which requests skip proxy\n"
       "# authentication and marks them \"X-Authbypass: <secret> <rule-id>\". Authentication\n"
       "# moves to adapted_http_access, where marked requests are allowed first.\n"
       "#\n"
       "# THIS FILE HOLDS THE SHARED SECRET: install it readable by root and proxy only\n"
       "# (chown root:proxy; chmod 0640). Regenerate it when the secret is rotated, and\n";
  t += o.prefilter ? "# when the policy's hosts, paths or user agents change (the prefilter).\n"
                   : "# when the policy changes.\n";
  t += "#\n"
       "# It replaces your `http_access allow <authenticated>` line: put it where that line\n"
       "# was, after your own deny rules (its allow lines end the http_access checks).\n\n";

  if (o.prefilter) {
    t += "# The prefilter: only candidate requests go to the REQMOD service; any other\n"
         "# request is simply authenticated.\n";
    prefilter_acls(policy, cfg, "the REQMOD service");
    t += "\n";
  }

  range_acl(t);
  t += "\n";

  const std::string& c = o.clients;
  t += "# 1. http_access sees the request as the client sent it: a client that sends the mark\n"
       "#    itself is denied, whatever the value. Clients that send credentials are\n"
       "#    authenticated here (so the access log keeps the user name, %un); the others go\n"
       "#    on to the REQMOD decision, and to proxy_auth after it.\n"
       "acl authbypass_client_mark req_header X-Authbypass .\n"
       "acl authbypass_has_creds req_header Proxy-Authorization .\n"
       "acl authbypass_auth proxy_auth REQUIRED\n"
       "http_access deny authbypass_client_mark\n"
       "http_access allow " +
       c + " authbypass_has_creds authbypass_auth\n" + "http_access allow " + c +
       " !authbypass_has_creds\n\n";

  t += "# 2. The decision: srv_authbypass in REQMOD. Squid strips Proxy-Authorization before\n"
       "#    REQMOD and the service answers 204 (unchanged) to anything it does not mark.\n"
       "#    bypass=1: when c-icap is down, requests go on unmarked and are authenticated (no\n"
       "#    bypass, but no outage either); the mark cannot be forged (section 1, the secret).\n";
  icap_common(t);
  t += icap_service("authbypass_req", "reqmod_precache", true, kIcapConnections / 2, o.icap_url) +
       "adaptation_access authbypass_req deny authbypass_has_creds\n"
       "adaptation_access authbypass_req deny " +
       std::string(kRangeAcl) + "\n";
  t += o.prefilter ? "adaptation_access authbypass_req allow authbypass_candidates\n"
                   : "adaptation_access authbypass_req allow all\n";
  t += "adaptation_access authbypass_req deny all\n\n";

  t += "# 3. After adaptation: a request that carries the service's mark (the secret, then a\n"
       "#    blank) skips proxy_auth; everything else authenticates here (407 as usual).\n"
       "#    The mark never leaves Squid, nor does c-icap's Via line on marked requests.\n"
       "acl authbypass_marked req_header X-Authbypass ^" +
       o.secret + "\\s";
  if (!o.previous_secret.empty()) t += " ^" + o.previous_secret + "\\s";
  t += "\n"
       "adapted_http_access allow authbypass_marked\n"
       "adapted_http_access allow authbypass_auth\n"
       "adapted_http_access deny all\n"
       "request_header_access X-Authbypass deny all\n"
       "request_header_access Via deny authbypass_marked\n\n";

  t +=
      "# 4. RESPMOD (authbypass.Mode both): what comes back to a marked request must be the\n"
      "#    revocation data its rule allows. bypass=0: unverified never reaches the client.\n" +
      icap_service("authbypass_resp", "respmod_precache", false, kIcapConnections / 2, o.icap_url) +
      "adaptation_access authbypass_resp allow authbypass_marked\n"
      "adaptation_access authbypass_resp deny all\n\n";
  if (!o.prefilter) {
    t += "# The URLs the policy's rules could bypass (hosts and paths only; no prefilter:\n"
         "# every request still goes to the REQMOD decision).\n";
    prefilter_acls(policy, cfg, "the REQMOD service", false);
  }
  cache_deny(t, "authbypass_candidate_urls",
             "every request for a URL a rule could bypass, marked, authenticated or\n# neither");
  t += "cache deny authbypass_marked\nsend_hit deny authbypass_marked\n\n";

  t += "# 5. The secret never leaves Squid. Inside Squid a marked request carries the mark;\n"
       "#    Squid's own answers echo request headers: error pages (%R in ERR_INVALID_RESP and\n"
       "#    ERR_INVALID_REQ; %W, the mailto link of every page, with email_err_data on) and\n"
       "#    TRACE with Max-Forwards: 0. So: no request data in mailto links, and a Squid-made\n"
       "#    error or TRACE answer to a marked request is replaced by a reset connection (no\n"
       "#    byte of it reaches the client, whatever the error templates say).\n"
       "email_err_data off\n"
       "acl authbypass_squid_reply rep_header X-Squid-Error .\n"
       "acl authbypass_trace method TRACE\n"
       "http_reply_access deny authbypass_marked authbypass_squid_reply\n"
       "http_reply_access deny authbypass_marked authbypass_trace\n"
       "deny_info TCP_RESET authbypass_squid_reply\n"
       "deny_info TCP_RESET authbypass_trace\n\n";

  t += "# The deciding rule is in the ICAP service's audit log (event bypass, one per request).\n"
       "logformat authbypass %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt\n";
  return cfg;
}

// Without the ICAP lines: a comment block and a warning per rule whose `verify` then does
// not happen, so that an admin who deploys the helper alone learns what each such rule
// delivers unchecked.
void warn_unprotected_without_icap(const Policy& policy, SquidConfig& cfg) {
  const std::vector<Warning> unprotected = unprotected_without_icap(policy, today_utc());
  if (unprotected.empty()) return;
  std::string& t = cfg.text;
  t += "\n# NO ICAP SERVICE (--no-icap): nothing checks what comes back through the hole.\n"
       "# These rules have `verify`, which only srv_authbypass enforces; here they deliver\n"
       "# whatever the origin sends to clients without credentials:\n";
  for (const Warning& w : unprotected) {
    t += "#   " + w.message.substr(0, w.message.find(". Deploy")) + "\n";
    cfg.warnings.push_back(w.message);
  }
  t += "# Deploy the ICAP service (squid-config without --no-icap, and the c-icap include),\n"
       "# or remove these rules from the policy.\n";
}

}  // namespace

SquidConfig squid_config(const Policy& policy, const SquidConfigOptions& o) {
  if (o.mode == SquidConfigMode::kIcap) return squid_config_icap(policy, o);
  SquidConfig cfg;
  std::string& t = cfg.text;
  t += "# authbypass: Squid drop-in generated by `authbypass squid-config` from " + policy.file() +
       "\n# (policy sha256 " + policy.sha256() +
       "). Regenerate it whenever the policy's hosts, paths or user agents change:\n"
       "# the prefilter below only lets candidate requests reach the helper.\n"
       "# Put it before the http_access line that demands authentication.\n\n";
  t += "external_acl_type authbypass ttl=" + std::to_string(o.ttl) +
       " negative_ttl=" + std::to_string(o.ttl) +
       " children-max=" + std::to_string(o.children_max) +
       " children-startup=0 concurrency=" + std::to_string(o.concurrency) +
       " queue-size=" + std::to_string(o.queue_size) + " %SRC %METHOD %#URI %#>ha{User-Agent} " +
       o.helper + " --policy " + o.policy_path;
  if (!o.audit_log.empty()) t += " --audit-log " + o.audit_log;
  t += "\nacl authbypass external authbypass\n\n";
  prefilter_acls(policy, cfg, "the helper");
  t += "\n";
  range_acl(t);
  cache_deny(t, "authbypass_candidate_urls",
             "every request for a candidate URL, with or without credentials, whatever\n# its "
             "User-Agent");
  t += "\n# The bypass. When it lets a request through, authbypass_noted notes that on the\n"
       "# transaction (last in the line: only then); the ICAP services below go by that note,\n"
       "# never by a second helper lookup, which may answer otherwise after a policy reload.\n"
       "acl authbypass_noted annotate_transaction authbypass=bypassed\n"
       "acl authbypass_bypassed note authbypass bypassed\n";
  t += "http_access allow authbypass_candidates !" + std::string(kRangeAcl) +
       " authbypass authbypass_noted\n";
  t += "# ... your `http_access allow authenticated` (proxy_auth) comes after this line.\n";
  t += "\n# Show the deciding rule in the access log (%ea is the helper's log=, %et its tag=):\n"
       "logformat authbypass %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt "
       "ea=%ea et=%et\n";

  if (!o.icap_url.empty()) {
    t += "\n# ICAP: srv_authbypass checks that what passes through the hole is revocation data.\n"
         "# bypass=0: if c-icap is down, bypassed requests fail (closed), never unverified.\n"
         "# REQMOD answers bodiless requests from their headers: a quarter of the connection\n"
         "# budget; RESPMOD checks bodies and gets the rest.\n";
    icap_common(t);
    t +=
        icap_service("authbypass_req", "reqmod_precache", false, kIcapConnections / 4, o.icap_url) +
        icap_service("authbypass_resp", "respmod_precache", false, kIcapConnections * 3 / 4,
                     o.icap_url) +
        "adaptation_access authbypass_req allow authbypass_bypassed\n"
        "adaptation_access authbypass_req deny all\n"
        "adaptation_access authbypass_resp allow authbypass_bypassed\n"
        "adaptation_access authbypass_resp deny all\n";
  }
  if (o.icap_url.empty()) warn_unprotected_without_icap(policy, cfg);
  return cfg;
}

}  // namespace authbypass
