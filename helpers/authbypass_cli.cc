// `authbypass`: the security team's tool for the policy (docs/architecture.md "CLI").
// Exit codes: 0 ok, 1 policy or test failure, 2 usage error.
#include <grp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "authbypass/explain.h"
#include "authbypass/icap_request.h"
#include "authbypass/m365.h"
#include "authbypass/output_file.h"
#include "authbypass/policy.h"
#include "authbypass/policy_check.h"
#include "authbypass/report.h"
#include "authbypass/revocation_check.h"
#include "authbypass/squid_config.h"

namespace {

using namespace authbypass;

constexpr int kOk = 0;
constexpr int kFailure = 1;
constexpr int kUsage = 2;

constexpr std::string_view kUsageText =
    R"(usage: authbypass COMMAND [options]

Commands:
  check POLICY [--strict] [--no-icap] [--date YYYY-MM-DD]
        Load and validate the policy, run its tests:, print warnings.
        --strict turns warnings into a failure (for CI gates).
        --no-icap: for a proxy without the ICAP service, warn for every rule
        whose verify check then does not happen, with what it lets through.
  test POLICY [--verbose] [--date YYYY-MM-DD]
        Run the policy's tests: only; prints "N passed, M failed".
  explain POLICY --url URL [--method M] [--user-agent UA] [--src IP] [--date YYYY-MM-DD]
        Show the decision for one request, the deciding rule, and for the
        nearest other rules which criterion failed.
  report LOG... [--policy POLICY] [--since T] [--until T] [--format text|json|csv]
         [--hours HH-HH] [--top N] [--burst N]
        For auditors: bypasses per rule, client and host, blocked responses and
        reasons, shadow hits, rules never hit, expiring rules, anomalies. Reads
        helper and ICAP audit logs (plain or .gz) and Squid access logs with %ea.
        T is RFC 3339 (2026-12-01T08:00:00Z) or a date (2026-12-01, UTC).
  squid-config POLICY [--helper PATH] [--policy-path PATH] [--audit-log FILE|--no-audit]
               [--icap URL|--no-icap] [--ttl S] [--children N]
        Print the squid.conf drop-in for this policy: the helper, a built-in
        prefilter derived from the policy (only candidate requests reach the
        helper), the http_access order and the ICAP services.
  squid-config --mode icap POLICY [--secret-file FILE] [--previous-secret-file FILE]
               [--icap URL] [--clients ACL] [--no-prefilter]
        ICAP decision mode: srv_authbypass (authbypass.Mode both) decides and marks;
        the drop-in holds the shared secret (default /etc/authbypass/icap-secret).
        --previous-secret-file: accept the old secret too while rotating.
        --clients: the ACL of clients that may use the proxy (default localnet).
  verify FILE... [--content-type T] [--verify KIND] [--preview N] [--chunk N] [--request]
        The ICAP service's check of a response body on each FILE: "verified KIND:
        genuine KIND" or "blocked -: REASON", the reason as in the audit log.
        KIND is a rule's verify (crl, ocsp, cert, ctl, revocation; default
        revocation); T the Content-Type the origin sent (default: none); --preview N
        decides as `authbypass.Verify preview` with an N-byte ICAP preview (Squid
        sends 1024); --request checks an OCSP POST body instead (Content-Type
        default application/ocsp-request). Exit status 0 when
        every FILE is verified, 1 when any is blocked.
  secret [--out FILE [--group GROUP] [--force]]
        Generate a shared secret for decision mode (32 random bytes, hex) on stdout,
        or into FILE (mode 0640, written atomically; an existing FILE only with --force).
  m365 import ENDPOINTS.json --policy-out FILE (--version V | --version-file FILE)
              [--ids 84,125] [--service-areas Common,Skype] [--category C,..]
              [--required-only] [--owner X] [--ticket Y] [--connect] [--shadow]
              [--expires YYYY-MM-DD] [--revocation-ids 84,125] [--keep-wildcards]
              [--instance Worldwide|USGovDoD|USGovGCCHigh|China]
              [--allow-customer-domain HOST|.DOMAIN]...
        Turn Microsoft 365 endpoint sets (default: the CRL/OCSP sets 84 and 125
        of the Worldwide list) into a policy file: GET/HEAD (OCSP: also POST) on
        port 80 with verify; --connect adds CONNECT rules for TCP 443 of required
        sets (others only when named with --ids). Hosts in customer-hosting
        domains (.blob.core.windows.net, .sharepoint.com, ...) only with
        --allow-customer-domain. What is left out is reported on stderr, never
        guessed. See docs/m365.md.
  m365 ips ENDPOINTS.json [--service-areas ..] [--ids ..] [--category Optimize,Allow]
           [--required-only] [--ipv4|--ipv6] [--format plain|nft|iptables-restore|squid-acl]
           [--name NAME] [--out FILE] [--version V | --version-file FILE] [--instance I]
        Aggregated firewall lists of the endpoint sets' IP ranges.
  m365 diff OLD.json NEW.json [--old-version V] [--new-version V] [--format text|json]
  m365 diff CHANGES.json [--endpoints ENDPOINTS.json] [--format text|json]
        What was added and removed per service area (two endpoint lists, or the
        web service's /changes answer), as text or as a JSON patch.

Options:
  --date YYYY-MM-DD   evaluate as on that day (UTC) instead of today
  -h, --help          this text
  --version           print the version

Output files (--policy-out, --out, secret --out; "-" is standard output): a regular
file is replaced atomically (a temporary file beside it, synced, renamed over it),
keeping its mode, owner and group; a symbolic link is followed and its target
replaced; a character device (/dev/null) or FIFO is written in place; a directory,
block device or socket is refused.

Exit status: 0 ok, 1 policy or test failure, 2 usage error.
)";

int usage_error(const std::string& msg) {
  std::cerr << "authbypass: " << msg << "\n"
            << "Run 'authbypass --help' for usage.\n";
  return kUsage;
}

// Parsed command line: positional arguments and --options (with values where declared).
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;           // the last value of each option
  std::map<std::string, std::vector<std::string>> all;  // every value, for repeatable options
  std::string error;
};

Args parse_args(int argc, char** argv, int first, const std::vector<std::string>& with_value,
                const std::vector<std::string>& flags) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() > 2 && arg.starts_with("--")) {
      std::string value;
      bool has_inline = false;
      if (auto eq = arg.find('='); eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline = true;
      }
      bool takes_value = std::find(with_value.begin(), with_value.end(), arg) != with_value.end();
      bool is_flag = std::find(flags.begin(), flags.end(), arg) != flags.end();
      if (!takes_value && !is_flag) {
        a.error = "unknown option '" + arg + "'";
        return a;
      }
      if (takes_value && !has_inline) {
        if (i + 1 >= argc) {
          a.error = "option '" + arg + "' needs a value";
          return a;
        }
        value = argv[++i];
      }
      if (is_flag && has_inline) {
        a.error = "option '" + arg + "' takes no value";
        return a;
      }
      a.options[arg] = value;
      a.all[arg].push_back(value);
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

std::optional<Date> date_option(const Args& a, std::string* error) {
  auto it = a.options.find("--date");
  if (it == a.options.end()) return today_utc();
  auto d = parse_date(it->second);
  if (!d) *error = "bad --date '" + it->second + "' (expected YYYY-MM-DD)";
  return d;
}

std::shared_ptr<const Policy> load_or_report(const std::string& path) {
  LoadResult r = load_policy_file(path);
  if (!r.ok()) {
    for (const auto& e : r.errors) std::cerr << e << "\n";
    std::cerr << "authbypass: " << path << ": policy not loaded (" << r.errors.size()
              << (r.errors.size() == 1 ? " error" : " errors")
              << "); fix the file and run 'authbypass check " << path << "' again\n";
  }
  return r.policy;
}

void print_test_results(const TestReport& report, bool verbose) {
  for (const auto& res : report.results) {
    if (!res.passed) {
      std::cout << res.test->where.to_string() << ": FAIL " << res.test->name << ": " << res.failure
                << "\n";
    } else if (verbose) {
      std::cout << res.test->where.to_string() << ": ok   " << res.test->name << "\n";
    }
  }
  std::cout << report.passed << " passed, " << report.failed << " failed\n";
}

// ---------------------------------------------------------------------------------------
// `authbypass verify FILE...`: the ICAP service's body check on files, for the security
// team (what did the service see when an audit line says "blocked"?) and for tests. Each
// file is checked as a response body with Content-Length = its size, the given
// Content-Type and no Content-Encoding, in chunks as they would arrive; --preview N does
// what `authbypass.Verify preview` does with an N-byte ICAP preview.
namespace verify_cli {

struct Options {
  Verify verify = Verify::kRevocation;
  std::string content_type;  // empty: the origin sent none
  std::optional<std::uint64_t> preview;
  std::size_t chunk = 65536;
  bool request = false;  // the body of a bypassed OCSP POST (REQMOD)
};

// One file's outcome, in the words of the service's audit event (`event`, `reason`).
struct Outcome {
  bool genuine = false;
  std::string kind;    // the kind passed, "-" when blocked
  std::string reason;  // "genuine crl", "identified crl (preview)", or why it was blocked
};

std::optional<Verify> parse_verify(std::string_view s) {
  static const std::pair<std::string_view, Verify> kNames[] = {{"crl", Verify::kCrl},
                                                               {"ocsp", Verify::kOcsp},
                                                               {"cert", Verify::kCert},
                                                               {"ctl", Verify::kCtl},
                                                               {"revocation", Verify::kRevocation}};
  for (const auto& [name, v] : kNames)
    if (s == name) return v;
  return std::nullopt;
}

// Reads `in` (of `size` bytes) into the check as the service does; false on a read error.
bool check_stream(std::istream& in, std::uint64_t size, const Options& o, Outcome& out) {
  RevocationCheck c =
      o.request ? RevocationCheck::for_ocsp_request() : RevocationCheck::for_response(o.verify);
  using State = RevocationCheck::State;
  auto blocked = [&] {
    out.genuine = false;
    out.kind = "-";
    out.reason = c.reason().empty() ? "not revocation data" : std::string(c.reason());
    return true;
  };
  if (c.begin(o.content_type, "", static_cast<std::int64_t>(size)) == State::kRejected)
    return blocked();
  std::vector<char> buf(o.chunk);
  std::uint64_t fed = 0;
  // Feeds up to `limit` more bytes; false on a read error.
  auto feed_upto = [&](std::uint64_t limit) {
    while (fed < limit && c.state() != State::kRejected) {
      const auto want =
          static_cast<std::streamsize>(std::min<std::uint64_t>(buf.size(), limit - fed));
      in.read(buf.data(), want);
      const std::streamsize got = in.gcount();
      if (got <= 0) return false;
      fed += static_cast<std::uint64_t>(got);
      c.feed(std::string_view(buf.data(), static_cast<std::size_t>(got)));
    }
    return true;
  };
  if (o.preview && !o.request) {
    if (!feed_upto(std::min(*o.preview, size))) return false;
    if (c.state() == State::kRejected) return blocked();
    if (fed<size&& * o.preview> 0 && c.identified()) {  // the rest streams past unchecked
      out.genuine = true;
      out.kind = std::string(to_string(c.kind()));
      out.reason = "identified " + out.kind + " (preview)";
      return true;
    }
  }
  if (!feed_upto(size)) return false;
  if (c.finish() != State::kGenuine) return blocked();
  out.genuine = true;
  out.kind = std::string(to_string(c.kind()));
  out.reason = "genuine " + out.kind;
  return true;
}

// A whole decimal number in [lo, hi] from --name, if given.
bool number(const Args& a, const char* name, std::uint64_t lo, std::uint64_t hi, std::uint64_t& v) {
  auto it = a.options.find(name);
  if (it == a.options.end()) return true;
  const std::string& s = it->second;
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  v = std::stoull(s);
  return v >= lo && v <= hi;
}

int run(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--content-type", "--verify", "--preview", "--chunk"},
                      {"--request"});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.empty())
    return usage_error("verify needs at least one FILE (a body saved to disk)");
  Options o;
  if (auto it = a.options.find("--verify"); it != a.options.end()) {
    auto v = parse_verify(it->second);
    if (!v)
      return usage_error("bad --verify '" + it->second +
                         "' (give a rule's verify: crl, ocsp, cert, ctl or revocation)");
    o.verify = *v;
  }
  if (auto it = a.options.find("--content-type"); it != a.options.end())
    o.content_type = it->second;
  std::uint64_t n = 0;
  if (a.options.contains("--preview")) {
    if (!number(a, "--preview", 0, 1 << 24, n))
      return usage_error(
          "--preview needs the preview size in bytes, 0-16777216 (Squid sends 1024)");
    o.preview = n;
  }
  if (a.options.contains("--chunk")) {
    if (!number(a, "--chunk", 1, 1 << 24, n))
      return usage_error("--chunk needs a size in bytes, 1-16777216");
    o.chunk = static_cast<std::size_t>(n);
  }
  o.request = a.options.contains("--request");
  if (o.request && !a.options.contains("--content-type"))
    o.content_type = "application/ocsp-request";
  if (o.request && (a.options.contains("--verify") || o.preview))
    return usage_error("--request checks an OCSP POST body: no --verify or --preview with it");
  bool all_genuine = true, unreadable = false;
  for (const std::string& path : a.positional) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    std::ifstream in(path, std::ios::binary);
    Outcome out;
    if (ec || !in || !check_stream(in, size, o, out)) {
      std::cerr << "authbypass: cannot read " << path << ": "
                << (ec ? ec.message() : std::string(std::strerror(errno)))
                << "; give a regular file holding the body\n";
      unreadable = true;
      continue;
    }
    all_genuine = all_genuine && out.genuine;
    std::cout << path << ": " << (out.genuine ? "verified " : "blocked ") << out.kind << ": "
              << out.reason << "\n";
  }
  if (unreadable) return kUsage;
  return all_genuine ? kOk : kFailure;
}

}  // namespace verify_cli

int cmd_check(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--date"}, {"--strict", "--verbose", "--no-icap"});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.size() != 1) return usage_error("check needs exactly one POLICY file");
  std::string err;
  auto today = date_option(a, &err);
  if (!today) return usage_error(err);

  auto policy = load_or_report(a.positional[0]);
  if (!policy) return kFailure;
  std::size_t shadow = 0;
  for (const auto& r : policy->rules()) shadow += r.mode == Mode::kShadow;
  std::cout << policy->file() << ": " << policy->rules().size() << " rules (" << shadow
            << " shadow), " << policy->tests().size() << " tests, sha256 " << policy->sha256()
            << "\n";
  for (std::size_t i = 1; i < policy->files().size(); ++i) {
    std::size_t n = 0;
    for (const auto& r : policy->rules()) n += r.where.file == policy->files()[i];
    std::cout << "  includes " << policy->files()[i] << " (" << n << " rules)\n";
  }
  auto warnings = lint_policy(*policy, *today);
  const bool no_icap = a.options.contains("--no-icap");
  if (no_icap)
    for (Warning& w : unprotected_without_icap(*policy, *today)) warnings.push_back(std::move(w));
  for (const auto& w : warnings) std::cout << w.to_string() << "\n";
  if (const std::string note = icap_dependency_note(*policy, *today); !no_icap && !note.empty())
    std::cout << note << "\n";
  TestReport report = run_policy_tests(*policy, *today);
  print_test_results(report, a.options.contains("--verbose"));
  const bool strict_fail = a.options.contains("--strict") && !warnings.empty();
  if (report.failed > 0 || strict_fail) {
    std::cout << "FAILED: " << report.failed << " failing tests, " << warnings.size() << " warnings"
              << (strict_fail ? " (--strict)" : "") << "\n";
    return kFailure;
  }
  std::cout << "OK: policy valid, " << warnings.size() << " warnings\n";
  return kOk;
}

int cmd_test(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--date"}, {"--verbose"});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.size() != 1) return usage_error("test needs exactly one POLICY file");
  std::string err;
  auto today = date_option(a, &err);
  if (!today) return usage_error(err);
  auto policy = load_or_report(a.positional[0]);
  if (!policy) return kFailure;
  TestReport report = run_policy_tests(*policy, *today);
  print_test_results(report, a.options.contains("--verbose"));
  return report.failed > 0 ? kFailure : kOk;
}

std::string describe_rule(const Rule& r) {
  std::string s = "'" + r.id + "' (" + r.where.to_string() + ")";
  return s;
}

int cmd_explain(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--url", "--method", "--user-agent", "--src", "--date"}, {});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.size() != 1) return usage_error("explain needs exactly one POLICY file");
  if (!a.options.contains("--url")) return usage_error("explain needs --url URL");
  std::string err;
  auto today = date_option(a, &err);
  if (!today) return usage_error(err);
  auto policy = load_or_report(a.positional[0]);
  if (!policy) return kFailure;

  const std::string method = a.options.contains("--method") ? a.options["--method"] : "GET";
  Request req;
  req.parse(
      RequestInput{method, a.options["--url"], a.options["--user-agent"], a.options["--src"]});

  std::cout << "request:  " << method << " " << a.options["--url"] << "\n";
  if (req.ok()) {
    std::cout << "          host " << req.host << ", port " << req.port;
    if (!req.is_connect) {
      std::cout << ", path "
                << (req.match_path_ok
                        ? std::string(req.match_path)
                        : "(unmatchable: " + std::string(req.path) +
                              (req.match_path_why ? std::string("; ") + req.match_path_why
                                                  : std::string()) +
                              ")");
    }
    std::cout << ", User-Agent "
              << (req.user_agent.empty() ? std::string("(none)") : "'" + std::string(req.user_agent) + "'")
              << ", client " << (req.src ? req.src->to_string() : std::string("(unknown)")) << "\n";
  }

  Explanation ex = explain(*policy, req, *today);
  const Decision& d = ex.decision;
  if (d.bypass()) {
    std::cout << "decision: BYPASS (no proxy authentication) by rule " << describe_rule(*d.rule)
              << ", verify " << to_string(d.rule->verify) << "\n";
    if (!d.rule->owner.empty() || !d.rule->ticket.empty())
      std::cout << "          owner " << (d.rule->owner.empty() ? "-" : d.rule->owner)
                << ", ticket " << (d.rule->ticket.empty() ? "-" : d.rule->ticket) << "\n";
  } else if (!req.ok()) {
    std::cout << "decision: AUTHENTICATE: the request is malformed (" << req.error()
              << "); a malformed request never bypasses\n";
  } else {
    std::cout << "decision: AUTHENTICATE: " << d.reason << "\n";
  }
  if (d.regex_fault)
    std::cout << "note:     a regex gave up on this input (over 1024 bytes, or too complex); "
                 "counted as no match\n";
  for (std::size_t i = 0; i < d.shadow_count; ++i) {
    std::cout << "shadow:   rule " << describe_rule(*d.shadow[i])
              << " matches (shadow mode: logged as 'would bypass', never changes the answer)\n";
  }
  if (!req.ok()) return kOk;

  auto show = [](const RuleExplanation& re) {
    for (const auto& c : re.checks)
      std::cout << "    " << (c.ok ? "ok   " : "FAIL ") << c.criterion << ": " << c.detail << "\n";
  };
  if (d.bypass()) {
    for (const auto& re : ex.rules)
      if (re.rule == d.rule) {
        std::cout << "why " << d.rule->id << " matches:\n";
        show(re);
      }
  }
  auto nearest = ex.nearest(3);
  if (!nearest.empty()) {
    std::cout << "nearest other rules:\n";
    for (const RuleExplanation* re : nearest) {
      std::string status;
      if (re->matched && re->rule->mode == Mode::kEnforce)
        status = "also matches (an earlier rule decided)";
      else if (re->failed() == 0)
        status = "matches";
      else
        status = std::to_string(re->failed()) + " of " + std::to_string(re->checks.size()) +
                 " criteria failed";
      std::cout << "  " << describe_rule(*re->rule)
                << (re->rule->mode == Mode::kShadow ? " [shadow]" : "") << ": " << status << "\n";
      show(*re);
    }
  }
  return kOk;
}

}  // namespace

int cmd_report(int argc, char** argv) {
  Args a = parse_args(
      argc, argv, 2,
      {"--policy", "--since", "--until", "--format", "--hours", "--top", "--burst", "--date"}, {});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.empty()) return usage_error("report needs at least one LOG file");
  ReportOptions o;
  std::string err;
  auto today = date_option(a, &err);
  if (!today) return usage_error(err);
  o.today = *today;
  for (const char* name : {"--since", "--until"}) {
    if (auto it = a.options.find(name); it != a.options.end()) {
      auto t = parse_time_ms(it->second);
      if (!t) {
        return usage_error("bad " + std::string(name) + " '" + it->second +
                           "' (expected 2026-12-01 or 2026-12-01T08:00:00Z)");
      }
      (std::string_view(name) == "--since" ? o.since_ms : o.until_ms) = *t;
    }
  }
  if (auto it = a.options.find("--hours"); it != a.options.end()) {
    int from = -1, to = -1;
    char dash = 0;
    if (std::sscanf(it->second.c_str(), "%d%c%d", &from, &dash, &to) != 3 || dash != '-' ||
        from < 0 || from > 23 || to < 0 || to > 24 || from == to) {
      return usage_error("bad --hours '" + it->second + "' (expected e.g. 07-20)");
    }
    o.hours = std::pair{from, to};
  }
  auto number = [&](const char* name, int lo, int hi, auto& field) {
    auto it = a.options.find(name);
    if (it == a.options.end()) return true;
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (end == it->second.c_str() || *end != '\0' || v < lo || v > hi) return false;
    field = static_cast<std::remove_reference_t<decltype(field)>>(v);
    return true;
  };
  if (!number("--top", 1, 100000, o.top)) return usage_error("--top needs a number 1-100000");
  if (!number("--burst", 1, 1000000, o.burst_per_minute))
    return usage_error("--burst needs a number of events per minute");
  std::string format = "text";
  if (auto it = a.options.find("--format"); it != a.options.end()) format = it->second;
  if (format != "text" && format != "json" && format != "csv")
    return usage_error("--format must be text, json or csv");
  if (auto it = a.options.find("--policy"); it != a.options.end()) {
    o.policy = load_or_report(it->second);
    if (!o.policy) return kFailure;
  }
  ReportBuilder report(std::move(o));
  int rc = kOk;
  for (const std::string& path : a.positional) {
    std::string ferr;
    if (!report.add_file(path, &ferr)) {
      std::cerr << "authbypass: " << ferr << "\n";
      rc = kFailure;
    }
  }
  std::cout << (format == "json" ? report.json() : format == "csv" ? report.csv() : report.text());
  if (report.malformed() > 0) {
    std::cerr << "authbypass: " << report.malformed() << " malformed line"
              << (report.malformed() == 1 ? "" : "s") << " skipped (see the report)\n";
  }
  return rc;
}

// squid-config --mode icap (decision mode): the shared secret(s) and the decision-mode
// options. kOk, or the exit code of a usage error / an unreadable secret.
int squid_config_mode_options(const Args& a, SquidConfigOptions& o) {
  const auto get = [&](const char* name) -> const std::string* {
    auto it = a.options.find(name);
    return it == a.options.end() ? nullptr : &it->second;
  };
  const std::string* mode = get("--mode");
  if (mode && *mode != "helper" && *mode != "icap")
    return usage_error("--mode must be helper or icap");
  if (!mode || *mode == "helper") {
    for (const char* name : {"--secret-file", "--previous-secret-file", "--clients", "--no-prefilter"})
      if (get(name)) return usage_error(std::string(name) + " needs --mode icap");
    return kOk;
  }
  o.mode = SquidConfigMode::kIcap;
  if (a.options.count("--no-icap")) return usage_error("--mode icap needs the ICAP service");
  if (const std::string* c = get("--clients")) o.clients = *c;
  if (o.clients.empty() || o.clients.find_first_of(" \t\"#\\") != std::string::npos)
    return usage_error("--clients needs an ACL name");
  if (o.icap_url.find_first_of(" \t\"#\\") != std::string::npos)
    return usage_error("--icap needs a URL without spaces, quotes or '#'");
  o.prefilter = !a.options.count("--no-prefilter");
  const std::string* file = get("--secret-file");
  const std::string path = file ? *file : "/etc/authbypass/icap-secret";
  std::string err;
  auto secret = icap::read_shared_secret_file(path, &err);
  if (!secret) {
    std::cerr << "authbypass: " << err << "\n";
    return kFailure;
  }
  o.secret = *secret;
  if (const std::string* prev = get("--previous-secret-file")) {
    auto old = icap::read_shared_secret_file(*prev, &err);
    if (!old) {
      std::cerr << "authbypass: " << err << "\n";
      return kFailure;
    }
    if (*old != o.secret) o.previous_secret = *old;
  }
  return kOk;
}

// `authbypass secret [--out FILE [--group GROUP] [--force]]`: a new shared secret.
int cmd_secret(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--out", "--group"}, {"--force"});
  if (!a.error.empty()) return usage_error(a.error);
  if (!a.positional.empty()) return usage_error("secret takes no arguments");
  const auto out = a.options.find("--out");
  if (out == a.options.end()) {
    if (a.options.count("--group") || a.options.count("--force"))
      return usage_error("--group and --force need --out FILE");
    std::cout << icap::generate_shared_secret() << "\n";
    return kOk;
  }
  const std::string& path = out->second;
  if (path.empty()) return usage_error("--out needs a file name");
  OutputFileOptions o;
  o.force_mode = 0640;  // regular files only: a device or FIFO is written as it is
  o.replace = a.options.count("--force") != 0;
  if (auto g = a.options.find("--group"); g != a.options.end()) {
    struct group* gr = ::getgrnam(g->second.c_str());
    if (!gr) return usage_error("unknown group '" + g->second + "'");
    o.group = gr->gr_gid;
  }
  const std::string secret = icap::generate_shared_secret() + "\n";
  if (path == "-") {
    std::cout << secret << std::flush;
    return std::cout ? kOk : kFailure;
  }
  if (OutputFileResult r = write_output_file(path, secret, o); !r) {
    std::cerr << "authbypass: " << r.message;
    if (r.error == OutputFileError::exists)
      std::cerr << " (--force replaces it; a running c-icap picks up the new secret within a "
                   "second, so update Squid first: docs/icap-service.md)";
    std::cerr << "\n";
    return kFailure;
  }
  std::cerr << "authbypass: new shared secret in " << path << "\n";
  return kOk;
}

int cmd_squid_config(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2,
                      {"--helper", "--policy-path", "--audit-log", "--icap", "--ttl", "--children",
                       "--mode", "--secret-file", "--previous-secret-file", "--clients"},
                      {"--no-audit", "--no-icap", "--no-prefilter"});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.size() != 1) return usage_error("squid-config needs exactly one POLICY file");
  SquidConfigOptions o;
  auto opt = [&](const char* name, std::string& field) {
    if (auto it = a.options.find(name); it != a.options.end()) field = it->second;
  };
  opt("--helper", o.helper);
  opt("--policy-path", o.policy_path);
  opt("--audit-log", o.audit_log);
  opt("--icap", o.icap_url);
  if (a.options.count("--no-audit")) o.audit_log.clear();
  if (a.options.count("--no-icap")) o.icap_url.clear();
  auto number = [&](const char* name, int lo, int hi, int& field) {
    auto it = a.options.find(name);
    if (it == a.options.end()) return true;
    try {
      std::size_t used = 0;
      int v = std::stoi(it->second, &used);
      if (used != it->second.size() || v < lo || v > hi) throw std::out_of_range("range");
      field = v;
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  if (!number("--ttl", 0, 86400, o.ttl)) return usage_error("--ttl needs seconds 0-86400");
  if (!number("--children", 1, 1000, o.children_max))
    return usage_error("--children needs a number 1-1000");
  for (const std::string* path : {&o.helper, &o.policy_path, &o.audit_log}) {
    if (path->find_first_of(" \t\"#") != std::string::npos)
      return usage_error("paths in squid.conf cannot hold spaces, quotes or '#': " + *path);
  }
  if (int rc = squid_config_mode_options(a, o); rc != kOk) return rc;
  auto policy = load_or_report(a.positional[0]);
  if (!policy) return kFailure;
  SquidConfig cfg;
  try {
    cfg = squid_config(*policy, o);
  } catch (const std::invalid_argument& e) {
    std::cerr << "authbypass: " << e.what() << "\n";
    return kFailure;
  }
  std::cout << cfg.text;
  for (const std::string& w : cfg.warnings) std::cerr << "authbypass: warning: " << w << "\n";
  return kOk;
}

// ---------------------------------------------------------------------------------------
// `authbypass m365 import|ips|diff` (docs/m365.md): the engine does the work
// (authbypass/m365.h); this only parses options, writes files and prints.

namespace m365_cli {

// "a,b,c" -> {"a","b","c"}; false on an empty item.
bool split_list(const std::string& s, std::vector<std::string>& out) {
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) return false;
    out.push_back(item);
    if (comma == std::string::npos) return true;
    start = comma + 1;
  }
}

bool split_ids(const std::string& s, std::vector<int>& out) {
  std::vector<std::string> items;
  if (!split_list(s, items)) return false;
  for (const auto& i : items) {
    if (i.empty() || i.size() > 9 || i.find_first_not_of("0123456789") != std::string::npos)
      return false;
    out.push_back(std::stoi(i));
  }
  return true;
}

// Fills the selection from --service-areas, --ids, --category, --required-only.
std::string m365_selection(const Args& a, m365::Selection& sel) {
  if (auto it = a.options.find("--service-areas"); it != a.options.end())
    if (!split_list(it->second, sel.service_areas))
      return "--service-areas needs a list like Common,Skype";
  if (auto it = a.options.find("--ids"); it != a.options.end())
    if (!split_ids(it->second, sel.ids)) return "--ids needs a list of endpoint set ids like 84,125";
  if (auto it = a.options.find("--category"); it != a.options.end()) {
    if (!split_list(it->second, sel.categories)) return "--category needs a list like Optimize,Allow";
    for (const auto& c : sel.categories)
      if (c != "Optimize" && c != "Allow" && c != "Default" && c != "optimize" && c != "allow" &&
          c != "default")
        return "unknown --category '" + c + "' (Optimize, Allow or Default)";
  }
  sel.required_only = a.options.contains("--required-only");
  return {};
}

// The endpoint list's instance from --instance (default Worldwide), canonical; nullopt for
// a name the web service does not have.
std::optional<std::string> m365_instance(const Args& a) {
  auto it = a.options.find("--instance");
  if (it == a.options.end()) return std::string(m365::kWorldwide);
  return m365::canonical_instance(it->second);
}

// Usage error for a bad --instance, or kOk.
int m365_check_instance_option(const Args& a) {
  if (m365_instance(a)) return kOk;
  return usage_error("unknown --instance '" + a.options.at("--instance") +
                     "' (Worldwide, USGovDoD, USGovGCCHigh or China)");
}

// The endpoint-list version from --version or --version-file (the /version answer).
// nullopt: an error was printed (exit code in *rc).
std::optional<std::string> m365_version(const Args& a, bool required, int* rc) {
  auto v = a.options.find("--version");
  auto f = a.options.find("--version-file");
  if (v != a.options.end() && f != a.options.end()) {
    *rc = usage_error("give --version or --version-file, not both");
    return std::nullopt;
  }
  if (v != a.options.end()) {
    if (!m365::valid_version(v->second)) {
      *rc = usage_error("bad --version '" + v->second + "' (e.g. 2024053100)");
      return std::nullopt;
    }
    return v->second;
  }
  if (f != a.options.end()) {
    std::string err;
    auto ver = m365::load_version_file(f->second, &err, m365_instance(a).value_or(""));
    if (!ver) {
      std::cerr << "authbypass: " << err << "\n";
      *rc = kFailure;
    }
    return ver;
  }
  if (required) {
    *rc = usage_error(
        "m365 import needs --version VERSION or --version-file FILE (the web service's /version "
        "answer): the endpoint list itself carries no version");
    return std::nullopt;
  }
  return std::string();
}

std::optional<m365::EndpointList> m365_load(const std::string& path) {
  m365::EndpointsResult r = m365::load_endpoints_file(path);
  if (!r.ok()) {
    for (const auto& e : r.errors) std::cerr << e << "\n";
    std::cerr << "authbypass: " << path << ": endpoint list not read (" << r.errors.size()
              << (r.errors.size() == 1 ? " error" : " errors") << "); nothing was written\n";
    return std::nullopt;
  }
  return std::move(*r.list);
}

// Writes FILE with write_output_file() (a regular file is replaced atomically, so a
// watcher such as the Squid helper never sees half a policy). "-" is stdout.
bool write_output(const std::string& path, const std::string& content) {
  if (path == "-") {
    std::cout << content << std::flush;
    return static_cast<bool>(std::cout);
  }
  if (OutputFileResult r = write_output_file(path, content); !r) {
    std::cerr << "authbypass: " << r.message << "\n";
    return false;
  }
  return true;
}

bool m365_revocation_ids(const Args& a, std::vector<int>& ids) {
  auto it = a.options.find("--revocation-ids");
  if (it == a.options.end()) return true;
  ids.clear();
  return split_ids(it->second, ids);
}

int run_import(int argc, char** argv) {
  Args a = parse_args(argc, argv, 3,
                      {"--service-areas", "--ids", "--category", "--owner", "--ticket",
                       "--policy-out", "--version", "--version-file", "--instance",
                       "--revocation-ids", "--expires", "--date", "--allow-customer-domain"},
                      {"--required-only", "--connect", "--shadow", "--keep-wildcards"});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.size() != 1) return usage_error("m365 import needs exactly one ENDPOINTS.json");
  if (!a.options.contains("--policy-out"))
    return usage_error("m365 import needs --policy-out FILE (or - for stdout)");
  if (int rc = m365_check_instance_option(a); rc != kOk) return rc;
  m365::ImportOptions o;
  o.instance = *m365_instance(a);
  if (std::string e = m365_selection(a, o.selection); !e.empty()) return usage_error(e);
  if (a.options.contains("--revocation-ids")) {
    std::vector<int> ids;
    if (!m365_revocation_ids(a, ids))
      return usage_error("--revocation-ids needs a list of endpoint set ids like 84,125");
    o.revocation_ids = std::move(ids);
  }
  if (auto it = a.all.find("--allow-customer-domain"); it != a.all.end())
    for (const std::string& v : it->second)
      if (!split_list(v, o.allow_customer_domains))
        return usage_error("--allow-customer-domain needs a host or .domain, e.g. .sharepoint.com");
  std::string err;
  auto today = date_option(a, &err);
  if (!today) return usage_error(err);
  o.today = *today;
  if (auto it = a.options.find("--expires"); it != a.options.end()) {
    o.expires = parse_date(it->second);
    if (!o.expires) return usage_error("bad --expires '" + it->second + "' (expected YYYY-MM-DD)");
  }
  o.owner = a.options["--owner"];
  o.ticket = a.options["--ticket"];
  o.connect = a.options.contains("--connect");
  o.shadow = a.options.contains("--shadow");
  o.keep_wildcards = a.options.contains("--keep-wildcards");
  const std::string out = a.options["--policy-out"];
  o.output_name = out == "-" ? "(stdout)" : out;
  int rc = kOk;
  auto version = m365_version(a, true, &rc);
  if (!version) return rc;
  o.version = *version;
  auto list = m365_load(a.positional[0]);
  if (!list) return kFailure;

  m365::ImportResult r = m365::import_policy(*list, o);
  for (const auto& n : r.notes) std::cerr << "authbypass: note: " << n << "\n";
  if (!r.ok()) {
    for (const auto& e : r.errors) std::cerr << "authbypass: " << e << "\n";
    std::cerr << "authbypass: m365 import failed; nothing was written\n";
    return kFailure;
  }
  if (!write_output(out, r.policy)) return kFailure;
  std::string ids;
  for (const auto& id : r.rule_ids) ids += (ids.empty() ? "" : ", ") + id;
  (out == "-" ? std::cerr : std::cout)
      << "authbypass: " << (out == "-" ? "policy on stdout" : "wrote " + out) << ": "
      << r.rule_ids.size() << (r.rule_ids.size() == 1 ? " rule" : " rules") << " (" << ids
      << ") from endpoint list version " << o.version << ", " << r.notes.size()
      << (r.notes.size() == 1 ? " note" : " notes") << " on stderr\n";
  return kOk;
}

int run_ips(int argc, char** argv) {
  Args a = parse_args(argc, argv, 3,
                      {"--service-areas", "--ids", "--category", "--format", "--name", "--out",
                       "--version", "--version-file", "--instance"},
                      {"--required-only", "--ipv4", "--ipv6"});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.size() != 1) return usage_error("m365 ips needs exactly one ENDPOINTS.json");
  if (int rc = m365_check_instance_option(a); rc != kOk) return rc;
  m365::IpsOptions o;
  if (std::string e = m365_selection(a, o.selection); !e.empty()) return usage_error(e);
  const bool v4 = a.options.contains("--ipv4"), v6 = a.options.contains("--ipv6");
  if (v4 && v6) return usage_error("give --ipv4 or --ipv6, not both (neither: both families)");
  o.ipv4 = !v6;
  o.ipv6 = !v4;
  const std::string format = a.options.contains("--format") ? a.options["--format"] : "plain";
  auto f = m365::parse_ip_format(format);
  if (!f) return usage_error("--format must be plain, nft, iptables-restore or squid-acl");
  o.format = *f;
  if (o.format == m365::IpFormat::kIptablesRestore && !v4 && !v6)
    return usage_error(
        "--format iptables-restore needs --ipv4 (iptables-restore) or --ipv6 (ip6tables-restore)");
  if (auto it = a.options.find("--name"); it != a.options.end()) {
    if (!m365::valid_list_name(it->second))
      return usage_error("bad --name '" + it->second +
                         "' (a letter, then letters, digits, _ or -, at most 28)");
    o.name = it->second;
  }
  int rc = kOk;
  auto version = m365_version(a, false, &rc);
  if (!version) return rc;
  o.version = *version;
  auto list = m365_load(a.positional[0]);
  if (!list) return kFailure;
  if (std::string e = m365::check_list_instance(*list, *m365_instance(a)); !e.empty()) {
    std::cerr << "authbypass: " << e << "\nauthbypass: nothing was written\n";
    return kFailure;
  }
  m365::IpsResult r = m365::firewall_list(*list, o);
  if (!r.ok()) {
    for (const auto& e : r.errors) std::cerr << "authbypass: " << e << "\n";
    return kFailure;
  }
  const std::string out = a.options.contains("--out") ? a.options["--out"] : "-";
  if (!write_output(out, r.text)) return kFailure;
  std::cerr << "authbypass: " << r.blocks.size() << " ranges (aggregated from " << r.input_blocks
            << ")" << (out == "-" ? "" : " in " + out) << "\n";
  return kOk;
}

int run_diff(int argc, char** argv) {
  Args a = parse_args(argc, argv, 3,
                      {"--format", "--old-version", "--new-version", "--endpoints",
                       "--revocation-ids"},
                      {});
  if (!a.error.empty()) return usage_error(a.error);
  if (a.positional.empty() || a.positional.size() > 2)
    return usage_error("m365 diff needs OLD.json NEW.json (two endpoint lists) or CHANGES.json "
                       "(a /changes answer)");
  const std::string format = a.options.contains("--format") ? a.options["--format"] : "text";
  if (format != "text" && format != "json") return usage_error("--format must be text or json");
  std::vector<int> revocation_ids = m365::kRevocationSetIds;
  if (!m365_revocation_ids(a, revocation_ids))
    return usage_error("--revocation-ids needs a list of endpoint set ids like 84,125");
  for (const char* name : {"--old-version", "--new-version"}) {
    auto it = a.options.find(name);
    if (it != a.options.end() && !m365::valid_version(it->second))
      return usage_error("bad " + std::string(name) + " '" + it->second + "'");
  }
  m365::Patch patch;
  if (a.positional.size() == 2) {
    if (a.options.contains("--endpoints"))
      return usage_error("--endpoints is for a /changes answer (m365 diff CHANGES.json)");
    auto old_list = m365_load(a.positional[0]);
    if (!old_list) return kFailure;
    auto new_list = m365_load(a.positional[1]);
    if (!new_list) return kFailure;
    patch = m365::diff_endpoints(*old_list, *new_list);
    patch.from_version = a.options["--old-version"];
    patch.to_version = a.options["--new-version"];
  } else {
    if (a.options.contains("--old-version") || a.options.contains("--new-version"))
      return usage_error("a /changes answer carries its versions; --old-version/--new-version "
                         "are for two endpoint lists");
    std::optional<m365::EndpointList> areas;
    if (auto it = a.options.find("--endpoints"); it != a.options.end()) {
      areas = m365_load(it->second);
      if (!areas) return kFailure;
    }
    m365::ChangesResult r =
        m365::load_changes_file(a.positional[0], areas ? &*areas : nullptr);
    if (!r.ok()) {
      for (const auto& e : r.errors) std::cerr << e << "\n";
      std::cerr << "authbypass: " << a.positional[0] << ": /changes answer not read ("
                << r.errors.size() << (r.errors.size() == 1 ? " error" : " errors") << ")\n";
      return kFailure;
    }
    patch = std::move(*r.patch);
  }
  std::cout << (format == "json" ? m365::patch_json(patch, revocation_ids)
                                 : m365::patch_text(patch, revocation_ids));
  return kOk;
}

}  // namespace m365_cli

int cmd_m365(int argc, char** argv) {
  if (argc < 3) return usage_error("m365 needs a subcommand: import, ips or diff");
  const std::string_view sub = argv[2];
  if (sub == "import") return m365_cli::run_import(argc, argv);
  if (sub == "ips") return m365_cli::run_ips(argc, argv);
  if (sub == "diff") return m365_cli::run_diff(argc, argv);
  return usage_error("unknown m365 subcommand '" + std::string(sub) + "' (import, ips or diff)");
}

int main(int argc, char** argv) {
  try {
    if (argc < 2) {
      std::cerr << kUsageText;
      return kUsage;
    }
    std::string_view cmd = argv[1];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::cout << kUsageText;
      return kOk;
    }
    if (cmd == "--version") {
      std::cout << "authbypass " AUTHBYPASS_VERSION "\n";
      return kOk;
    }
    if (cmd == "check") return cmd_check(argc, argv);
    if (cmd == "test") return cmd_test(argc, argv);
    if (cmd == "explain") return cmd_explain(argc, argv);
    if (cmd == "squid-config") return cmd_squid_config(argc, argv);
    if (cmd == "secret") return cmd_secret(argc, argv);
    if (cmd == "report") return cmd_report(argc, argv);
    if (cmd == "m365") return cmd_m365(argc, argv);
    if (cmd == "verify") return verify_cli::run(argc, argv);
    return usage_error("unknown command '" + std::string(cmd) + "'");
  } catch (const std::exception& e) {
    std::cerr << "authbypass: internal error: " << e.what() << "\n";
    return kFailure;
  }
}
