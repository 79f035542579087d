// Policy review: the policy's own `tests:` and the warnings of DESIGN §2.
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
// within 30 days of `today` or already expired.
std::vector<Warning> lint_policy(const Policy& policy, Date today);

}  // namespace authbypass
