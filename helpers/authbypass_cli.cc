// `authbypass`: the security team's tool for the policy (DESIGN §6).
// Exit codes: 0 ok, 1 policy or test failure, 2 usage error.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "authbypass/explain.h"
#include "authbypass/policy.h"
#include "authbypass/policy_check.h"
#include "authbypass/report.h"
#include "authbypass/squid_config.h"

namespace {

using namespace authbypass;

constexpr int kOk = 0;
constexpr int kFailure = 1;
constexpr int kUsage = 2;

constexpr std::string_view kUsageText =
    R"(usage: authbypass COMMAND [options]

Commands:
  check POLICY [--strict] [--date YYYY-MM-DD]
        Load and validate the policy, run its tests:, print warnings.
        --strict turns warnings into a failure (for CI gates).
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

Options:
  --date YYYY-MM-DD   evaluate as on that day (UTC) instead of today
  -h, --help          this text
  --version           print the version

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
  std::map<std::string, std::string> options;
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

int cmd_check(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--date"}, {"--strict", "--verbose"});
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
  for (const auto& w : warnings) std::cout << w.to_string() << "\n";
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
                << (req.match_path_ok ? req.match_path : "(unmatchable: " + req.path + ")");
    }
    std::cout << ", User-Agent "
              << (req.user_agent.empty() ? std::string("(none)") : "'" + req.user_agent + "'")
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

int cmd_squid_config(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2,
                      {"--helper", "--policy-path", "--audit-log", "--icap", "--ttl", "--children"},
                      {"--no-audit", "--no-icap"});
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
  auto policy = load_or_report(a.positional[0]);
  if (!policy) return kFailure;
  SquidConfig cfg = squid_config(*policy, o);
  std::cout << cfg.text;
  for (const std::string& w : cfg.warnings) std::cerr << "authbypass: warning: " << w << "\n";
  return kOk;
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
    if (cmd == "report") return cmd_report(argc, argv);
    return usage_error("unknown command '" + std::string(cmd) + "'");
  } catch (const std::exception& e) {
    std::cerr << "authbypass: internal error: " << e.what() << "\n";
    return kFailure;
  }
}
