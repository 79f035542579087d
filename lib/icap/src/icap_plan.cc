#include "authbypass/icap_plan.h"

namespace authbypass::icap {

std::string mark_header(std::string_view secret, std::string_view rule_id) {
  std::string h;
  h.reserve(kMarkHeader.size() + 3 + secret.size() + rule_id.size());
  h += kMarkHeader;
  h += ": ";
  h += secret;
  h += ' ';
  h += rule_id;
  return h;
}

MarkPlan plan_mark(bool client_sent_mark, bool policy_bypasses) {
  MarkPlan p;
  if (client_sent_mark) {
    p.strip = true;
    p.forged = true;
    return p;
  }
  p.mark = policy_bypasses;
  return p;
}

std::optional<std::string_view> marked_rule(std::string_view value, std::string_view secret) {
  value = trim(value);
  if (secret.empty() || value.size() <= secret.size() + 1) return std::nullopt;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < secret.size(); ++i)
    diff |= static_cast<unsigned char>(value[i] ^ secret[i]);
  const char sep = value[secret.size()];
  if (diff != 0 || (sep != ' ' && sep != '\t')) return std::nullopt;
  std::string_view rule = trim(value.substr(secret.size() + 1));
  if (rule.empty() || rule.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
  return rule;
}

HolePlan plan_unauthenticated(bool respmod, bool has_body, bool is_connect, const Rule* decided,
                              const Rule* marked) {
  HolePlan p;
  p.disagrees = decided == nullptr;
  if (!respmod) {
    if (has_body) {
      p.action = HoleAction::kCheckOcspRequest;
    } else if (is_connect && !decided) {
      p.action = HoleAction::kRefuse;  // an opaque tunnel nothing here allows
    }
    return p;
  }
  if (decided) {
    p.verify = decided->verify;
  } else {
    p.verify = marked && marked->verify != Verify::kNone ? marked->verify : Verify::kRevocation;
  }
  p.action = p.verify == Verify::kNone ? HoleAction::kAllow : HoleAction::kCheck;
  return p;
}

}  // namespace authbypass::icap
