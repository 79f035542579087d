// Policy review: the policy's own `tests:` and the warnings of docs/architecture.md "Policy".
#pragma once

#include <string>
#include <vector>

#include "authbypass/policy.h"

namespace authbypass {

struct TestResult {
  const PolicyTest* test = nullptr;
  bool passed = false;
  std::string failure;  // what differed, when !passed
};

struct TestReport {
  std::vector<TestResult> results;
  int passed = 0;
  int failed = 0;
};

// Runs every `tests:` case. A case without `date:` runs on `today`.
TestReport run_policy_tests(const Policy& policy, Date today);

struct Warning {
  SourceLocation where;
  std::string message;
  std::string to_string() const;  // "file:line:column: warning: message"
};

// Warnings: a rule that can match on client-controlled data alone (user_agent* or path_*
// without hosts), a rule listing CONNECT or a port other than 80 (a CONNECT-only rule on
// port 443 is one warning), each hosts entry of a CONNECT or `verify: none` rule that is
// in or above a customer-hosting domain (authbypass/customer_hosting.h), a rule expiring
// within 30 days of `today` or already expired, and those of lint_wildcard_hosts.
std::vector<Warning> lint_policy(const Policy& policy, Date today);

// One warning per ".domain" hosts entry of an active enforce rule that has no path_prefix,
// path_suffix or path_regex, naming the rule and the entry: every host under that domain
// (a CA's or vendor's web site and downloads included) skips authentication for any path.
// Part of lint_policy.
std::vector<Warning> lint_wildcard_hosts(const Policy& policy, Date today);

// For a deployment without the ICAP service (`squid-config --no-icap`, or only the helper
// lines copied): one warning per active enforce rule with `verify` other than none, saying
// what that rule then delivers unchecked to clients without credentials. Not part of
// lint_policy (`check --no-icap` adds them).
std::vector<Warning> unprotected_without_icap(const Policy& policy, Date today);

// One line for `check` when some active enforce rule has `verify` (empty otherwise): the
// check holds only with the ICAP service wired in, and `check --no-icap` lists the rules.
std::string icap_dependency_note(const Policy& policy, Date today);

}  // namespace authbypass
