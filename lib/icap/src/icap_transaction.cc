#include "authbypass/icap_transaction.h"

#include <algorithm>
#include <utility>

#include "authbypass/request.h"

namespace authbypass::icap {

namespace {

struct OutcomeText {
  std::string_view event, verdict;
};

constexpr OutcomeText kOutcomes[] = {
#define AUTHBYPASS_X(name, event, verdict) {event, verdict},
    AUTHBYPASS_ICAP_OUTCOMES(AUTHBYPASS_X)
#undef AUTHBYPASS_X
};

// True iff some active enforce rule restricts `src`: without X-Client-IP such a rule
// cannot be re-evaluated, so "no match" is not trustworthy.
bool policy_uses_src(const Policy& p, Date today) {
  for (const Rule& r : p.rules())
    if (r.mode == Mode::kEnforce && r.active(today) && !r.match.src.empty()) return true;
  return false;
}

std::string value_or_empty(std::optional<std::string_view> v) {
  return v ? std::string(*v) : std::string();
}

}  // namespace

std::string_view event_name(Outcome o) {
  return kOutcomes[static_cast<std::size_t>(o)].event;
}

std::string verdict_text(Outcome o, std::string_view kind, std::uint64_t aborted_after) {
  std::string v(kOutcomes[static_cast<std::size_t>(o)].verdict);
  switch (o) {
    case Outcome::kMarkedGenuine:
    case Outcome::kGenuine:
      v.append(" ").append(kind);
      break;
    case Outcome::kIdentified:
      v.append(" ").append(kind).append(" (preview)");
      break;
    case Outcome::kAborted:
      v.append(" ").append(std::to_string(aborted_after)).append(" bytes");
      break;
    default:
      break;
  }
  return v;
}

std::optional<Counter> counter_of(Outcome o, std::optional<RevocationKind> kind) {
  switch (o) {
    case Outcome::kNone:
      return std::nullopt;
    case Outcome::kForgedMark:
      return Counter::kForged;
    case Outcome::kMarked:
    case Outcome::kMarkedTunnel:
    case Outcome::kMarkedGenuine:
      return Counter::kMarked;
    case Outcome::kBlocked:
    case Outcome::kIncomplete:
    case Outcome::kAborted:
      return Counter::kBlocked;
    case Outcome::kGenuine:
      if (!kind) return Counter::kUnchecked;
      switch (*kind) {
        case RevocationKind::kCrl:
          return Counter::kVerifiedCrl;
        case RevocationKind::kOcspResponse:
          return Counter::kVerifiedOcsp;
        case RevocationKind::kCertificate:
          return Counter::kVerifiedCert;
        case RevocationKind::kPkcs7:
          return Counter::kVerifiedPkcs7;
        case RevocationKind::kCtl:
          return Counter::kVerifiedCtl;
        case RevocationKind::kOcspRequest:
          return Counter::kVerifiedOcspRequest;
      }
      return Counter::kUnchecked;
    case Outcome::kIdentified:
    case Outcome::kTunnelUnchecked:
    case Outcome::kVerifyNone:
    case Outcome::kNoBody:
      return Counter::kUnchecked;
  }
  return std::nullopt;
}

void Transaction::set(Outcome o, std::string reason) {
  outcome_ = o;
  reason_ = std::move(reason);
}

void Transaction::block(std::string reason) {
  action_ = Action::kBlock;
  audit_ = true;
  set(Outcome::kBlocked, std::move(reason));
}

void Transaction::reject(std::string reason) {
  if (reason.empty()) {
    reason = check_ ? std::string(check_->reason()) : std::string();
    if (reason.empty()) reason = "not revocation data";
  }
  set(Outcome::kBlocked, std::move(reason));
}

void Transaction::genuine(bool preview_only) {
  if (check_) kind_ = check_->kind();
  if (decide_) {  // decision mode: the OCSP request passed, the request is marked
    set(Outcome::kMarkedGenuine);
    return;
  }
  // A request body that passes writes no event: the response's event is the record of
  // the request (one event per bypassed request).
  if (!respmod_) audit_ = false;
  set(preview_only ? Outcome::kIdentified : Outcome::kGenuine);
}

bool Transaction::over_body_cap(std::uint64_t held) {
  if (!check_ || rejected() || outcome_ != Outcome::kNone || held <= body_cap_) return false;
  reject("request body over the OCSP size cap");
  return true;
}

BodyVerdict Transaction::preview_seen(std::size_t preview_bytes, bool whole_body) {
  if (!check_) return BodyVerdict::kMore;
  if (rejected()) {
    reject();
    return BodyVerdict::kRejected;
  }
  if (whole_body) return body_finished();
  if (respmod_ && verify_mode_ == VerifyMode::kPreview && preview_bytes > 0 &&
      check_->identified()) {
    genuine(true);
    return BodyVerdict::kGenuine;
  }
  return BodyVerdict::kMore;
}

BodyVerdict Transaction::body_finished() {
  if (check_ && !finished_) {
    finished_ = true;
    check_->finish();
  }
  if (check_ && check_->state() == RevocationCheck::State::kGenuine) {
    genuine(false);
    return BodyVerdict::kGenuine;
  }
  reject();
  return BodyVerdict::kRejected;
}

void Transaction::block_page_sent() {
  audit_ = true;
  outcome_ = Outcome::kBlocked;
  if (reason_.empty()) reason_ = "blocked";
  status_ = 403;  // what the client gets
}

void Transaction::edit_failed() {
  mark_.clear();
  audit_ = true;
  set(Outcome::kBlocked, "the request's headers could not be edited");
}

void Transaction::aborted(std::uint64_t sent) {
  outcome_ = Outcome::kAborted;
  aborted_after_ = sent;
}

std::optional<Counter> Transaction::end(std::uint64_t bytes_seen, std::vector<AuditEvent>& out) {
  std::optional<Counter> counted;
  const AuditRequest req{src_, method_, url_, host_, ua_};
  if (audit_ && !ended_) {
    ended_ = true;
    if (outcome_ == Outcome::kNone && action_ == Action::kCheck) {
      // Ended before a verdict: Squid (client or origin) closed the transaction.
      set(Outcome::kIncomplete, "ICAP transaction ended before the end of the body");
    }
    if (outcome_ == Outcome::kNone) set(Outcome::kBlocked, "no verdict");
    if (!note_.empty()) reason_ = reason_.empty() ? note_ : reason_ + "; " + note_;
    note_.clear();
    verdict_ = verdict_text(outcome_, kind_ ? to_string(*kind_) : "?", aborted_after_);
    out.push_back(icap_event(event_name(outcome_), sha_, req,
                             {.rule = rule_,
                              .owner = owner_,
                              .ticket = ticket_,
                              .status = status_,
                              .content_type = content_type_,
                              .bytes = static_cast<std::int64_t>(bytes_seen),
                              .verdict = verdict_,
                              .reason = reason_}));
    counted = counter_of(outcome_, kind_);
  }
  for (const Rule* r : shadows_) out.push_back(rule_event("icap", "shadow", r, sha_, req));
  shadows_.clear();
  return counted;
}

// The encapsulated HTTP request as the engine's input; its method, URL and User-Agent are
// kept for the audit event.
Translated Transaction::translate(const TransactionFacts& f) {
  Translated tr = icap::translate(f.request);
  method_ = tr.method;
  url_ = tr.url;
  ua_ = tr.user_agent;
  return tr;
}

void Transaction::set_rule(const Rule& r) {
  rule_ = r.id;
  owner_ = r.owner;
  ticket_ = r.ticket;
}

// A bypassed request with a body: only an OCSP request may go up the hole. Either starts
// the check of its body (true: a begin() that refused it is blocked by classify()) or
// blocks it (false).
bool Transaction::check_ocsp_request(const TransactionFacts& f, const TransactionContext& c) {
  content_type_ = value_or_empty(f.content_type);
  const auto cl = content_length(f.content_length);
  // The content type is the check's: begin() refuses anything but application/ocsp-request
  // (classify() then blocks with its reason).
  if (!cl) {
    block("malformed Content-Length in the request");
    return false;
  }
  RevocationLimits rl = c.limits;
  rl.ocsp = std::min<std::uint64_t>(rl.ocsp, kMaxRequestBody);
  body_cap_ = rl.ocsp;
  check_.emplace(RevocationCheck::for_ocsp_request(rl));
  check_->begin(content_type_, f.content_encoding.value_or(""), *cl);
  action_ = Action::kCheck;
  return true;
}

// REQMOD in decision mode: the service decides. Every request of Squid's
// adaptation_access comes here, bypassed or not, so anything that is not a bypass is a 204
// (no event): never a 403 for a request that merely cannot be evaluated, which Squid then
// authenticates.
void Transaction::classify_decide(const TransactionFacts& f, const TransactionContext& c) {
  decide_ = true;
  action_ = Action::kAllow;
  if (!f.has_request) return;  // nothing to strip, nothing to mark
  src_ = value_or_empty(f.request.client_ip);
  const Translated tr = translate(f);

  Decision d;
  bool is_connect = false;
  policy_ = c.policy;
  // Squid sends X-Authenticated-User only for a user it authenticated (in http_access,
  // for clients that sent credentials): such a request needs no mark.
  if (!f.authenticated && tr.ok() && policy_ && c.secret) {
    sha_ = policy_->sha256();
    Request r;
    if (r.parse(RequestInput{method_, url_, ua_, src_})) {
      host_ = r.host;
      is_connect = r.is_connect;
      d = policy_->decide(r, c.today);
      shadows_.assign(d.shadow.begin(), d.shadow.begin() + d.shadow_count);
      if (!d.bypass() && src_.empty() && policy_uses_src(*policy_, c.today))
        warning_ = Warning::kNoClientIp;
    }
  }
  if (d.bypass()) set_rule(*d.rule);

  const MarkPlan plan = plan_mark(f.client_sent_mark, d.bypass());
  strip_marks_ = plan.strip;
  if (plan.forged) {
    audit_ = true;
    set(Outcome::kForgedMark,
        "the client sent its own X-Authbypass header (is Squid's `http_access deny` of "
        "client-sent marks missing?): removed, no bypass");
    action_ = Action::kModify;
    return;
  }
  if (!plan.mark) return;  // 204

  audit_ = true;
  if (!f.has_body) {
    set(is_connect ? Outcome::kMarkedTunnel : Outcome::kMarked);
    mark_ = mark_header(*c.secret, d.rule->id);
    action_ = Action::kModify;
    return;
  }
  // A bypassed request with a body: only an OCSP request may go up the hole (as in
  // verify mode); it is marked only once the whole body passed the check.
  if (check_ocsp_request(f, c)) mark_ = mark_header(*c.secret, d.rule->id);
}

FactsNeeded Transaction::needs(bool initialized, ServiceMode mode, bool respmod,
                               bool authenticated) {
  FactsNeeded n;
  const bool decision_mode = initialized && mode != ServiceMode::kVerify;
  const bool decide_reqmod = decision_mode && !respmod;
  // An authenticated user's message never came through the hole (decision-mode REQMOD
  // still strips a client-sent mark); Mode decide does not verify RESPMOD.
  if (authenticated && !decide_reqmod) return n;
  if (decision_mode && respmod && mode == ServiceMode::kDecide) return n;
  n.http_headers = true;
  n.policy = initialized && !authenticated;
  n.secret = decision_mode && !authenticated;
  n.client_sent_mark = decide_reqmod;
  n.mark_value = decision_mode && respmod;
  return n;
}

void Transaction::classify(const TransactionFacts& f, const TransactionContext& c) {
  respmod_ = f.respmod;
  verify_mode_ = c.verify_mode;
  const bool decision_mode = c.initialized && c.mode != ServiceMode::kVerify;
  if (decision_mode) {
    if (!f.respmod) {
      classify_decide(f, c);
    } else if (c.mode == ServiceMode::kDecide) {
      warning_ = Warning::kRespmodInDecide;
      action_ = Action::kAllow;
    } else {
      classify_hole(f, c, decision_mode);
    }
  } else {
    classify_hole(f, c, false);
  }
  if (action_ == Action::kCheck && rejected()) {
    // begin() refused (content type, encoding, declared length)
    action_ = Action::kBlock;
    reject();
  }
}

void Transaction::classify_hole(const TransactionFacts& f, const TransactionContext& c,
                                bool decision_mode) {
  // Squid sends X-Authenticated-User (base64 with icap_client_username_encode on) only
  // for a user it authenticated: such requests never went through the hole.
  if (f.authenticated) {
    action_ = Action::kAllow;
    return;
  }
  src_ = value_or_empty(f.request.client_ip);
  if (f.has_response) {
    status_ = f.status;
    content_type_ = value_or_empty(f.content_type);
  }
  if (!f.has_request) {
    method_ = "-";
    block("no encapsulated HTTP request headers");
    return;
  }
  if (const Translated tr = translate(f); !tr.ok()) {
    block(tr.error);
    return;
  }
  if (!c.initialized) {
    block("service not initialized");
    return;
  }
  policy_ = c.policy;
  if (!policy_) {
    block("no valid policy loaded");
    return;
  }
  sha_ = policy_->sha256();

  Request r;
  if (!r.parse(RequestInput{method_, url_, ua_, src_})) {
    block("malformed request: " + std::string(r.error()));
    return;
  }
  host_ = r.host;
  const Decision d = policy_->decide(r, c.today);
  if (!d.bypass() && src_.empty() && policy_uses_src(*policy_, c.today)) {
    block("no X-Client-IP (icap_send_client_ip on): rules with src cannot be re-evaluated");
    return;
  }
  // Decision mode, RESPMOD: the mark (the adapted request's header) names the rule the
  // REQMOD decision used, possibly in another child with another policy snapshot.
  const Rule* marked = nullptr;
  std::string marked_id;
  if (f.respmod && decision_mode && c.secret && f.mark_value) {
    if (auto id = marked_rule(*f.mark_value, *c.secret)) {
      marked_id = *id;
      marked = policy_->find_rule(marked_id);
    }
  }
  const HolePlan plan = plan_unauthenticated(f.respmod, f.has_body, r.is_connect,
                                             d.bypass() ? d.rule : nullptr, marked);
  if (const Rule* rule = d.bypass() ? d.rule : marked) {
    set_rule(*rule);
  } else {
    rule_ = marked_id;
  }
  audit_ = true;
  if (plan.disagrees) {
    // The decider (the helper's answer cached by Squid, or the REQMOD decision) bypassed
    // it; this policy snapshot would authenticate it: a reload in between, never a 204.
    note_ = "this service's policy (sha256 " + sha_.substr(0, 12) +
            ") does not bypass the request (reloaded since the bypass was decided)";
    if (plan.action == HoleAction::kCheck)
      note_ += ": checked as verify " + std::string(to_string(plan.verify));
  }

  if (!f.respmod) {
    switch (plan.action) {
      case HoleAction::kRefuse:
        block(note_ + ": a CONNECT tunnel cannot be checked, refused");
        note_.clear();
        return;
      case HoleAction::kCheckOcspRequest:
        // A request with a body through the hole: only an OCSP request may go up it.
        check_ocsp_request(f, c);
        return;
      default:
        break;
    }
    action_ = Action::kAllow;
    if (r.is_connect) {
      // A tunnel gets no RESPMOD: this is its one event. Its bytes are opaque.
      set(Outcome::kTunnelUnchecked);
    } else {
      audit_ = false;  // nothing to check here; the response's event is the record
    }
    return;
  }

  if (plan.action == HoleAction::kAllow) {
    action_ = Action::kAllow;
    set(Outcome::kVerifyNone);
    return;
  }
  if (!f.has_response) {
    block("no encapsulated HTTP response headers");
    return;
  }
  if (!f.has_body) {
    // HEAD, 304, 204...: no body goes through the hole.
    action_ = Action::kAllow;
    set(Outcome::kNoBody);
    return;
  }
  const auto cl = content_length(f.content_length);
  if (!cl) {
    block("malformed Content-Length in the response");
    return;
  }
  check_.emplace(RevocationCheck::for_response(plan.verify, c.limits));
  check_->begin(content_type_, f.content_encoding.value_or(""), *cl);
  action_ = Action::kCheck;
}

}  // namespace authbypass::icap
