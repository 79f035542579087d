// The ICAP service's decision rules that are not wire translation: decision mode's mark
// (what REQMOD does with a request, the mark it adds, the rule a mark names) and what the
// service does with a message that came through the hole. Pure functions, used by
// icap::Transaction (icap_transaction.h); the wire side (headers, secret) is icap_request.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "authbypass/icap_request.h"
#include "authbypass/policy.h"

namespace authbypass::icap {

// ---------------------------------------------------------------------------------------
// Decision mode (icap_request.h: the X-Authbypass header).

// The header line that marks a bypassed request: "X-Authbypass: <secret> <rule-id>".
std::string mark_header(std::string_view secret, std::string_view rule_id);

// What decision mode does with one REQMOD request.
struct MarkPlan {
  bool strip = false;   // remove every client-sent X-Authbypass line
  bool mark = false;    // add our mark (the policy bypasses the request)
  bool forged = false;  // the client sent a mark: audited as `blocked`, never marked
  bool modified() const { return strip || mark; }  // ICAP 200 with the edited request, else 204
};

// A request that arrives carrying the header was sent by a client (or by something that
// should not be there): it is stripped and never marked, whatever the policy says, even
// if the value is the right secret. Otherwise a bypass is marked and anything else left
// unchanged.
MarkPlan plan_mark(bool client_sent_mark, bool policy_bypasses);

// The rule id a mark's value ("<secret> <rule-id>") names, when the value starts with
// `secret` and one blank; nullopt otherwise (another secret, no rule id, a non-empty secret
// required). The secret is compared in constant time.
std::optional<std::string_view> marked_rule(std::string_view value, std::string_view secret);

// ---------------------------------------------------------------------------------------
// Messages that came through the hole. Squid sends the service only bypassed requests
// (adaptation_access ... authbypass, or the X-Authbypass mark): a request without
// X-Authenticated-User that reaches it was let through without authentication, by a
// decider (the helper's answer cached in Squid, or another c-icap child in decision mode)
// whose policy snapshot may differ from this one. The service never lets such a message
// through unchecked merely because its own policy now says "authenticate".

enum class HoleAction : std::uint8_t {
  kAllow,             // 204: nothing to check here (or the deciding rule has verify: none)
  kCheckOcspRequest,  // REQMOD: the body must be a DER OCSP request of at most 64 KiB
  kCheck,             // RESPMOD: the body must be what `verify` names
  kRefuse,            // 403: cannot be checked (a CONNECT tunnel no policy here bypasses)
};

struct HolePlan {
  HoleAction action = HoleAction::kAllow;
  Verify verify = Verify::kNone;  // kCheck: the check
  // The service's own policy does not bypass the request: checked (or refused) although
  // its policy would have authenticated it. Audited with that reason.
  bool disagrees = false;
};

// What the service does with an unauthenticated REQMOD (respmod false) or RESPMOD message.
// `decided`: the rule by which this service's policy bypasses the request (null: the policy
// says authenticate). `marked`: in decision mode, the rule the request's mark names, looked
// up in this service's policy (null: no mark, or a rule this policy does not have).
//   * decided: as the rule says (REQMOD: a body must be an OCSP request; RESPMOD: the
//     rule's verify, none = 204).
//   * not decided: REQMOD with a body is checked as an OCSP request; a CONNECT is refused;
//     REQMOD without a body is left to RESPMOD (204). RESPMOD is checked with the marked
//     rule's verify, or `revocation` when there is no marked rule or it has verify: none.
HolePlan plan_unauthenticated(bool respmod, bool has_body, bool is_connect, const Rule* decided,
                              const Rule* marked);

}  // namespace authbypass::icap
