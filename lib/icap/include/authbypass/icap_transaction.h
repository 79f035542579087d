// One ICAP transaction of srv_authbypass.so, as the engine sees it: what the service does
// with a REQMOD or RESPMOD message given the facts the adapter read from the wire, which
// check its body needs, the typed outcome, the audit events that record it and the
// statistics counter it counts under. Pure logic, no I/O: the adapter (c-icap callbacks,
// buffering, the 403 page) reads the headers that needs() names into TransactionFacts,
// applies the Action, feeds the body to check(), asks for the verdict (preview_seen(),
// over_body_cap(), body_finished()), reports what only it knows (the page sent, an edit
// that failed, a late abort, an internal error) and writes the events that end() returns.
//
// The decision table (classify):
//   * Mode decide|both, REQMOD (decision mode): every request comes here. Authenticated,
//     unreadable or not bypassed: kAllow (204), no event. A client-sent X-Authbypass line:
//     kModify (stripped), outcome kForgedMark, never marked. Bypassed without a body:
//     kModify with the mark, outcome kMarked (kMarkedTunnel for CONNECT). Bypassed with a
//     body: its OCSP request check (kCheck), marked only once genuine (kMarkedGenuine).
//   * Mode decide, RESPMOD: kAllow, no event (warning kRespmodInDecide).
//   * Otherwise (verify, or both for RESPMOD): X-Authenticated-User: kAllow, no event.
//     Missing request headers, an untranslatable or unparsable request, no policy: kBlock.
//     No X-Client-IP while an active enforce rule restricts src and nothing bypasses: kBlock.
//     Then plan_unauthenticated (icap_request.h) over the policy's own decision and, in
//     decision mode RESPMOD, the rule the mark names: REQMOD refuses a CONNECT the policy
//     does not bypass (kBlock), checks a body as an OCSP request (kCheck), allows the rest
//     (a bypassed CONNECT records kTunnelUnchecked; others leave the record to RESPMOD).
//     RESPMOD: verify none -> kVerifyNone; no response headers -> kBlock; no body ->
//     kNoBody; malformed Content-Length -> kBlock; else the rule's check (kCheck). When the
//     service's policy does not bypass the request, the reason says so.
//   * A check that begin() already rejected: kBlock with the check's reason.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/audit.h"
#include "authbypass/icap_plan.h"
#include "authbypass/policy.h"
#include "authbypass/revocation_check.h"
#include "authbypass/stats.h"

namespace authbypass::icap {

// A bypassed request body (an OCSP POST) is held whole: never more than this, whatever the
// configured OCSP cap says for OCSP responses.
inline constexpr std::uint64_t kMaxRequestBody = 64 * 1024;

// authbypass.Mode: verify (Squid's helper decides, the service checks), decide (the REQMOD
// service decides and marks), both (decides in REQMOD, verifies in RESPMOD).
enum class ServiceMode : std::uint8_t { kVerify, kDecide, kBoth };

// authbypass.VerifyMode: full (the whole body is checked) or preview (a RESPMOD body whose
// ICAP preview identifies it as the expected kind passes on that identification alone).
enum class VerifyMode : std::uint8_t { kFull, kPreview };

// What the adapter does once the body (or its preview) has been looked at.
enum class BodyVerdict : std::uint8_t {
  kMore,      // no verdict yet: read on
  kGenuine,   // passed (genuine(), done): 204, or decision mode's marked request goes on
  kRejected,  // rejected (reject(), done): the 403 page, or abort a streamed body
};

// What the adapter does with the message.
enum class Action : std::uint8_t {
  kAllow,   // 204, no check
  kCheck,   // check the body with check() (RESPMOD: the response; REQMOD: the OCSP request)
  kBlock,   // 403 at once
  kModify,  // decision mode: the request's headers edited (strip_marks(), mark()), its
            // body (if any) passed on unchanged
};

// How the transaction ended, as audited: each outcome has one event name and one verdict.
#define AUTHBYPASS_ICAP_OUTCOMES(X)                                              \
  X(kNone, "", "") /* no event (yet) */                                          \
  X(kBlocked, "blocked", "blocked (403)")                                        \
  X(kForgedMark, "blocked", "forged mark removed")                               \
  X(kIncomplete, "blocked", "incomplete") /* ended before the end of the body */ \
  X(kAborted, "blocked", "aborted after") /* late rejection while streaming */   \
  X(kMarked, "bypass", "marked")                                                 \
  X(kMarkedTunnel, "bypass", "marked (CONNECT tunnel, not checked)")             \
  X(kMarkedGenuine, "bypass", "marked, genuine")                                 \
  X(kGenuine, "verified", "genuine")                                             \
  X(kIdentified, "verified", "identified") /* Verify preview */                  \
  X(kTunnelUnchecked, "verified", "not checked (CONNECT tunnel)")                \
  X(kVerifyNone, "verified", "not checked (verify: none)")                       \
  X(kNoBody, "verified", "no body")

enum class Outcome : std::uint8_t {
#define AUTHBYPASS_X(name, event, verdict) name,
  AUTHBYPASS_ICAP_OUTCOMES(AUTHBYPASS_X)
#undef AUTHBYPASS_X
};

// The audit event name of an outcome ("" for kNone).
std::string_view event_name(Outcome o);

// The audit verdict: the outcome's text, with the checked kind for kMarkedGenuine,
// kGenuine ("genuine crl") and kIdentified ("identified crl (preview)"), and the bytes sent
// for kAborted ("aborted after 123 bytes").
std::string verdict_text(Outcome o, std::string_view kind, std::uint64_t aborted_after);

// The service's statistics counters (Counter, counter_label) are declared in stats.h.

// The counter an audited outcome counts under: kGenuine by its kind (verified crl ...),
// every other verified outcome as unchecked, every bypass as marked, kForgedMark as forged,
// every other blocked outcome as blocked. nullopt for kNone.
std::optional<Counter> counter_of(Outcome o, std::optional<RevocationKind> kind);

// What the adapter read from one ICAP transaction. Views: valid during classify() only.
struct TransactionFacts {
  bool respmod = false;
  bool has_body = false;          // the ICAP message encapsulates a body
  bool authenticated = false;     // ICAP X-Authenticated-User present
  bool has_request = false;       // encapsulated HTTP request headers present
  EncapsulatedRequest request;    // request line, Host, User-Agent, X-Client-IP
  bool client_sent_mark = false;  // decision-mode REQMOD: an X-Authbypass line in the request
  std::optional<std::string_view> mark_value;  // RESPMOD: the request's X-Authbypass value
  bool has_response = false;                   // RESPMOD: encapsulated response headers
  int status = -1;                             // RESPMOD: the response's status code
  // The headers of the body that may be checked: the response's (RESPMOD) or the
  // request's (REQMOD).
  std::optional<std::string_view> content_type, content_length, content_encoding;
};

// The service's configuration and state in force for the transaction.
struct TransactionContext {
  bool initialized = true;  // false: the service did not start (every message blocked)
  ServiceMode mode = ServiceMode::kVerify;
  VerifyMode verify_mode = VerifyMode::kFull;
  std::shared_ptr<const Policy> policy;       // null: no valid policy
  std::shared_ptr<const std::string> secret;  // decision mode's shared secret
  RevocationLimits limits;
  Date today{};
};

// Which facts and state classify() reads for a message, given what every message has
// (its type and the ICAP X-Authenticated-User) and the service's mode: the adapter reads and
// loads only these, and leaves the rest of TransactionFacts / TransactionContext empty.
struct FactsNeeded {
  bool http_headers = false;      // the encapsulated headers and X-Client-IP (the other facts)
  bool policy = false;            // TransactionContext::policy
  bool secret = false;            // TransactionContext::secret
  bool client_sent_mark = false;  // TransactionFacts::client_sent_mark
  bool mark_value = false;        // TransactionFacts::mark_value
};

// Something the service should log once (the adapter rate-limits it).
enum class Warning : std::uint8_t {
  kNone,
  kRespmodInDecide,  // RESPMOD in Mode decide: answered 204, not verified
  kNoClientIp,       // decision mode without X-Client-IP while rules restrict src
};

// One transaction. Not thread-safe (one per ICAP transaction).
class Transaction {
 public:
  // Decides what to do with the message (the table above). May throw (std::bad_alloc);
  // the adapter then calls block("internal error").
  void classify(const TransactionFacts& f, const TransactionContext& c);
  // What classify() needs to read (FactsNeeded): nothing beyond the message's type for an
  // authenticated user outside decision-mode REQMOD and for RESPMOD in Mode decide (both a
  // 204 whatever the headers say).
  static FactsNeeded needs(bool initialized, ServiceMode mode, bool respmod, bool authenticated);

  Action action() const { return action_; }
  Outcome outcome() const { return outcome_; }
  Warning warning() const { return warning_; }
  bool decides() const { return decide_; }  // decision-mode REQMOD
  bool respmod() const { return respmod_; }
  // kCheck: the body's check, begun with the message's headers. Null otherwise.
  RevocationCheck* check() { return check_ ? &*check_ : nullptr; }
  bool rejected() const { return check_ && check_->state() == RevocationCheck::State::kRejected; }
  // Decision mode: remove every client-sent X-Authbypass line; the mark line to add
  // (empty: none; for a checked body, add it once genuine).
  bool strip_marks() const { return strip_marks_; }
  const std::string& mark() const { return mark_; }
  const std::string& rule_id() const { return rule_; }  // "" when no rule is known
  const std::string& url() const { return url_; }

  // The most body bytes the adapter may hold for the check: a bypassed request body (an
  // OCSP request) min(limits.ocsp, kMaxRequestBody); a response body is bounded by its
  // check's own caps (no limit here).
  std::uint64_t body_cap() const { return body_cap_; }
  // The adapter holds `held` body bytes of a check without a verdict yet: over body_cap()
  // the transaction is rejected ("request body over the OCSP size cap") and this returns
  // true, once (the adapter drops what it holds and sends the 403 page).
  bool over_body_cap(std::uint64_t held);
  // The ICAP preview was fed to check(); `preview_bytes` of it were body, `whole_body`: it
  // held the whole body. kRejected when the check rejected it (reject()); with the whole
  // body, body_finished(); kGenuine when the preview alone passes: a RESPMOD in VerifyMode
  // preview whose check identified the kind (genuine(true), outcome kIdentified); kMore
  // otherwise (read on).
  BodyVerdict preview_seen(std::size_t preview_bytes, bool whole_body);
  // The whole body was fed to check(): finishes the check (once) and records its verdict
  // (genuine(false) or reject()). kGenuine or kRejected, never kMore.
  BodyVerdict body_finished();

  // The audited outcome is a 403: kBlocked with `reason`, action kBlock.
  void block(std::string reason);
  // The check rejected the body (or the adapter refused it for `reason`): kBlocked with
  // the check's reason ("not revocation data" when it gave none) or `reason`.
  void reject(std::string reason = {});
  // The body passed the check (finish() genuine), or in Verify preview mode the preview
  // identified it (`preview_only`). A passing REQMOD OCSP request outside decision mode
  // writes no event (the response's event is the record).
  void genuine(bool preview_only);
  // The adapter sends the 403 page: the outcome is kBlocked (the reason stays; "blocked"
  // if none), the status audited is 403.
  void block_page_sent();
  // Decision mode: editing the request's headers failed: no mark (the page follows).
  void edit_failed();
  // A late rejection after `sent` body bytes went out: kAborted (the reason stays).
  void aborted(std::uint64_t sent);

  // Ends the transaction: an audited transaction without an outcome becomes kIncomplete
  // (a check without verdict) or kBlocked ("no verdict"). Appends its events to `out`,
  // once: the outcome's (with `bytes_seen` body bytes), then the decision-mode shadow
  // matches. The events point into this object. Returns the counter of the outcome's
  // event (nullopt when none was appended).
  std::optional<Counter> end(std::uint64_t bytes_seen, std::vector<AuditEvent>& out);

 private:
  void classify_decide(const TransactionFacts& f, const TransactionContext& c);
  void classify_hole(const TransactionFacts& f, const TransactionContext& c, bool decision_mode);
  Translated translate(const TransactionFacts& f);
  void set_rule(const Rule& r);  // the rule, owner and ticket audited
  bool check_ocsp_request(const TransactionFacts& f, const TransactionContext& c);
  void set(Outcome o, std::string reason = {});

  Action action_ = Action::kAllow;
  Outcome outcome_ = Outcome::kNone;
  Warning warning_ = Warning::kNone;
  bool respmod_ = false;
  bool decide_ = false;
  bool strip_marks_ = false;
  bool audit_ = false;
  bool ended_ = false;
  std::optional<RevocationCheck> check_;
  std::optional<RevocationKind> kind_;  // the kind found genuine
  std::uint64_t aborted_after_ = 0;
  std::uint64_t body_cap_ = UINT64_MAX;
  VerifyMode verify_mode_ = VerifyMode::kFull;
  bool finished_ = false;  // check_->finish() was called

  std::shared_ptr<const Policy> policy_;  // keeps rule pointers alive
  std::vector<const Rule*> shadows_;
  std::string mark_;
  std::string rule_, owner_, ticket_, sha_, src_, method_, url_, host_, ua_, content_type_;
  std::string reason_, note_, verdict_;
  int status_ = -1;
};

}  // namespace authbypass::icap
