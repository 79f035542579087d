// The policy: YAML schema version 1 (docs/architecture.md "Policy"), loaded whole or not at all
// into an immutable Policy that any number of threads may share and query.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/decision.h"
#include "authbypass/eval_context.h"
#include "authbypass/ip.h"
#include "authbypass/request.h"

namespace authbypass {

using Date = std::chrono::sys_days;  // a calendar day, UTC

// Today's date in UTC, from the system clock. The engine never reads the clock itself:
// callers pass the date in, so tests can pin it.
Date today_utc();

// Parses "YYYY-MM-DD" (a real calendar date). nullopt otherwise.
std::optional<Date> parse_date(std::string_view text);
std::string format_date(Date d);

// Limits on policy files: larger files are load errors.
inline constexpr std::size_t kMaxPolicyFileBytes = 8u << 20;  // 8 MiB
inline constexpr std::size_t kMaxRegexLength = 1024;

struct SourceLocation {
  std::string file;
  int line = 0;                   // 1-based
  int column = 0;                 // 1-based
  std::string to_string() const;  // "file:line:column"
};

enum class Mode : std::uint8_t { kEnforce, kShadow };
enum class Verify : std::uint8_t { kNone, kCrl, kOcsp, kCert, kCtl, kRevocation };
std::string_view to_string(Mode m);
std::string_view to_string(Verify v);

// One `hosts` entry.
struct HostPattern {
  enum class Kind : std::uint8_t {
    kExact,   // "example.com": that host only
    kSuffix,  // ".example.com": it and every subdomain, at label boundaries
    kCidr,    // "192.0.2.7", "13.107.0.0/16", "2001:db8::/32": an IP-literal URL host
  };
  Kind kind = Kind::kExact;
  std::string name;  // normalized name without the leading dot (kExact, kSuffix)
  Cidr cidr;         // kCidr
  std::string text;  // as written in the policy

  // True iff this entry matches the request's host.
  bool matches(const Request& req) const;
};

class Regex;  // a compiled Boost.Regex (perl syntax, case-insensitive); see compiled_regex.h

struct RegexPattern {
  std::string text;
  std::shared_ptr<const Regex> regex;
};

// The `match` block. An absent key is an empty list, except methods and ports, which get
// the safe defaults (GET, HEAD / 80) and remember that they were defaulted.
struct Match {
  std::vector<std::string> methods;  // upper-case
  std::uint8_t method_bits = 0;      // method_bit() of each of `methods`, OR-ed
  bool methods_defaulted = false;
  std::vector<std::uint16_t> ports;
  bool ports_defaulted = false;
  std::vector<HostPattern> hosts;
  std::vector<std::string> path_prefix;  // lower-case
  std::vector<std::string> path_suffix;  // lower-case
  std::vector<RegexPattern> path_regex;
  std::vector<std::string> user_agent;  // lower-case literals
  std::vector<RegexPattern> user_agent_regex;
  std::vector<Cidr> src;
};

struct Rule {
  std::string id;
  std::string description;
  std::string owner;
  std::string ticket;
  Mode mode = Mode::kEnforce;
  std::optional<Date> expires;  // inactive from this day on (UTC)
  Verify verify = Verify::kNone;
  Match match;
  SourceLocation where;     // where the rule starts in its file
  std::uint32_t index = 0;  // position in file order

  // True iff the rule is in force on `today`.
  bool active(Date today) const { return !expires || today < *expires; }
};

// One entry of `tests:`.
struct PolicyTest {
  std::string name;
  std::string method = "GET";
  std::string url;
  std::string user_agent;
  std::string src;
  bool expect_bypass = false;
  std::optional<std::string> expect_rule;                 // `rule:`
  std::optional<std::vector<std::string>> expect_shadow;  // `shadow:` (extension)
  std::optional<Date> date;                               // `date:` (extension)
  SourceLocation where;
};

class HostIndex;  // see host_matcher.h

// A loaded, validated, compiled policy. Immutable after load; share it as
// std::shared_ptr<const Policy> and swap the pointer to reload.
class Policy {
 public:
  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  const std::vector<Rule>& rules() const { return rules_; }
  const std::vector<PolicyTest>& tests() const { return tests_; }
  const std::string& file() const { return file_; }
  // Every file the policy was loaded from: file() first, then its `include:`s in load
  // order (each rule's `where` names its own file).
  const std::vector<std::string>& files() const { return files_; }
  const std::string& sha256() const { return sha256_; }  // hex digest of the file bytes
  // Unique per loaded policy in this process (never reused), for per-request memos.
  std::uint64_t generation() const { return generation_; }
  const Rule* find_rule(std::string_view id) const;

  // The decision for one request on `today` (docs/architecture.md "Policy"). Thread-safe,
  // no I/O, and no allocation once `ctx` is warm. A malformed request (req.ok() false)
  // always authenticates. Reads `req` and this policy only; remembers regex outcomes in
  // `ctx` (the caller's, one per thread), which never changes a decision.
  Decision decide(const Request& req, Date today, EvalContext& ctx) const {
    return decide_impl(req, today, &ctx);
  }
  // The same decision without memos: every regex a rule reaches is evaluated (for one-off
  // decisions: explain, policy tests, one ICAP transaction).
  Decision decide(const Request& req, Date today) const;

  // Per-rule criterion checks (slow path, for regex evaluation, `explain` and tests).
  bool methods_match(const Rule& r, const Request& req) const;
  bool ports_match(const Rule& r, const Request& req) const;
  bool hosts_match(const Rule& r, const Request& req) const;
  bool src_match(const Rule& r, const Request& req) const;
  bool path_match(const Rule& r, const Request& req, bool* regex_fault) const;
  bool user_agent_match(const Rule& r, const Request& req, bool* regex_fault) const;
  // The same, recalling and remembering regex outcomes in `ctx` when it is not null.
  bool user_agent_match(const Rule& r, const Request& req, bool* regex_fault,
                        EvalContext* ctx) const;

  // Number of regex evaluations that hit Boost's complexity limit (non-matches).
  std::uint64_t regex_faults() const { return regex_faults_.load(std::memory_order_relaxed); }

 private:
  friend class PolicyLoader;
  Policy();
  bool rule_matches_except_hosts(const Rule& r, const Request& req, bool* fault,
                                 EvalContext* ctx) const;
  Decision decide_impl(const Request& req, Date today, EvalContext* ctx) const;

  std::string file_;
  std::vector<std::string> files_;
  std::string sha256_;
  std::uint64_t generation_ = 0;
  std::vector<Rule> rules_;
  std::vector<PolicyTest> tests_;
  std::unique_ptr<HostIndex> index_;
  std::vector<std::uint32_t> hostless_;  // rules without `hosts`, in file order
  std::uint32_t last_shadow_ = 0;        // index of the last shadow rule (0 if none)
  mutable std::atomic<std::uint64_t> regex_faults_{0};
};

// The result of loading: a policy, or every error found, each "file:line:column: message".
struct LoadResult {
  std::shared_ptr<const Policy> policy;
  std::vector<std::string> errors;
  bool ok() const { return policy != nullptr; }
};

// Loads a policy file. All-or-nothing: any error means no policy.
LoadResult load_policy_file(const std::string& path);

// Loads a policy from memory; `name` stands for the file name in errors.
LoadResult load_policy_text(std::string_view text, const std::string& name);

}  // namespace authbypass
