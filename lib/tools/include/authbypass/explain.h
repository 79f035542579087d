// Explanations for people: why a request bypasses or not, criterion by criterion.
#pragma once

#include <string>
#include <vector>

#include "authbypass/policy.h"

namespace authbypass {

struct CriterionCheck {
  std::string criterion;  // "method", "port", "host", "path", "user_agent", "src", "active"
  bool ok = false;
  std::string detail;     // one sentence an admin understands
};

struct RuleExplanation {
  const Rule* rule = nullptr;
  bool matched = false;  // every criterion holds and the rule is active
  std::vector<CriterionCheck> checks;
  int failed() const;    // number of failed checks
};

struct Explanation {
  Decision decision;
  std::vector<RuleExplanation> rules;  // every rule, in file order
  // The rules that came closest without deciding: fewest failed criteria first, then file
  // order; at most `max_nearest`.
  std::vector<const RuleExplanation*> nearest(std::size_t max_nearest) const;
};

Explanation explain(const Policy& policy, const Request& req, Date today);

}  // namespace authbypass
