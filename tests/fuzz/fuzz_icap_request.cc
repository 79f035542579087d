// libFuzzer target: the ICAP service's translation of an encapsulated request (request
// line, Host, User-Agent, X-Client-IP, Content-Length, status line, Content-Type) into the
// engine's input, then the decision, then the whole transaction (icap::Transaction) in
// every service mode with the body that follows. Fields are separated by LF in the input:
//   request line, Host, User-Agent, X-Client-IP, Content-Length, status line,
//   Content-Type, flags, Content-Encoding, X-Authbypass value, body (the rest).
// "-" is an absent header. Flags: one character whose bits say RESPMOD (1), body (2),
// X-Authenticated-User (4), no request headers (8), no response headers (16), a client-sent
// mark (32); the next character's low two bits the mode (verify, decide, both), its bits
// 2-6 the adapter's path: VerifyMode preview (4), editing the headers fails (8), a late
// rejection aborts the streamed body (16), an internal error (32), OcspMaxBytes 64 (64).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/icap_request.h"
#include "authbypass/icap_transaction.h"
#include "authbypass/policy.h"

using namespace authbypass;

namespace {

const std::string kSecret(32, 'a');

// How the adapter's side of a transaction goes (the second flags character's bits 2-6).
struct Path {
  bool preview_mode = false;    // VerifyMode preview
  bool edit_fails = false;      // decision mode: editing the headers fails
  bool streaming = false;       // a late rejection aborts a streamed body
  bool internal_error = false;  // the adapter caught an exception: block("internal error")
  bool small_cap = false;       // OcspMaxBytes 64: the request body cap
};

// The transaction's invariants: what a message from the hole may never get.
void run_transaction(const icap::TransactionFacts& f, icap::ServiceMode mode,
                     const std::shared_ptr<const Policy>& policy, std::string_view body,
                     const Path& p) {
  icap::TransactionContext c;
  c.mode = mode;
  c.verify_mode = p.preview_mode ? icap::VerifyMode::kPreview : icap::VerifyMode::kFull;
  if (p.small_cap) c.limits.ocsp = 64;
  c.policy = policy;
  c.secret = std::make_shared<const std::string>(kSecret);
  c.today = today_utc();
  icap::Transaction t;
  t.classify(f, c);
  const bool decide_reqmod = mode != icap::ServiceMode::kVerify && !f.respmod;
  if (t.action() == icap::Action::kBlock && t.outcome() != icap::Outcome::kBlocked)
    __builtin_trap();
  if (!t.mark().empty() && !decide_reqmod) __builtin_trap();  // only decision REQMOD marks
  if (t.action() == icap::Action::kModify && !decide_reqmod) __builtin_trap();
  if (!f.respmod && t.action() == icap::Action::kCheck && t.body_cap() > icap::kMaxRequestBody)
    __builtin_trap();
  // A response through the hole with a body is never passed unchecked, unless the
  // service's own policy bypasses it by a rule with verify: none.
  if (f.respmod && mode != icap::ServiceMode::kDecide && !f.authenticated && f.has_body &&
      t.action() == icap::Action::kAllow) {
    const Rule* r = policy->find_rule(t.rule_id());
    if (t.outcome() != icap::Outcome::kVerifyNone || !r || r->verify != Verify::kNone)
      __builtin_trap();
  }
  bool blocked = t.action() == icap::Action::kBlock;
  if (p.internal_error) {
    t.block("internal error");
    blocked = true;
  } else if (t.action() == icap::Action::kModify && p.edit_fails) {
    t.edit_failed();
    if (!t.mark().empty()) __builtin_trap();
    blocked = true;
  } else if (t.action() == icap::Action::kCheck) {
    RevocationCheck* check = t.check();
    if (!check) __builtin_trap();
    // The preview (up to 64 bytes), then the rest, as the adapter feeds them.
    const std::string_view preview = body.substr(0, 64);
    const std::string_view rest = body.substr(preview.size());
    if (!t.rejected()) check->feed(preview);
    icap::BodyVerdict v = t.preview_seen(preview.size(), rest.empty());
    if (v == icap::BodyVerdict::kGenuine && p.preview_mode && f.respmod &&
        t.outcome() == icap::Outcome::kIdentified && t.mark().empty()) {
      // passed on its preview: only a RESPMOD in preview mode
    } else if (v == icap::BodyVerdict::kGenuine && t.outcome() == icap::Outcome::kIdentified) {
      __builtin_trap();
    }
    if (v == icap::BodyVerdict::kMore) {
      if (t.over_body_cap(preview.size() + rest.size())) {
        if (f.respmod) __builtin_trap();  // the cap is the request body's
        v = icap::BodyVerdict::kRejected;
      } else {
        if (!t.rejected()) check->feed(rest);
        v = t.body_finished();
        if (v == icap::BodyVerdict::kMore) __builtin_trap();
      }
    }
    if (v == icap::BodyVerdict::kGenuine && check->state() != RevocationCheck::State::kGenuine &&
        t.outcome() != icap::Outcome::kIdentified)
      __builtin_trap();
    if (v == icap::BodyVerdict::kRejected) {
      if (p.streaming) {
        t.aborted(body.size() / 2);
        if (t.outcome() != icap::Outcome::kAborted) __builtin_trap();
      } else {
        blocked = true;
      }
    } else if (p.edit_fails && t.decides()) {
      t.edit_failed();  // the marked request could not be edited: no mark, a 403
      blocked = true;
    }
  }
  if (blocked) {
    t.block_page_sent();
    if (t.outcome() != icap::Outcome::kBlocked) __builtin_trap();
  }
  std::vector<AuditEvent> events;
  const auto counter = t.end(body.size(), events);
  if (counter && (events.empty() || events[0].event.empty() || events[0].verdict.empty()))
    __builtin_trap();
  if (counter && *counter == icap::Counter::kMarked && t.mark().empty()) __builtin_trap();
  if (blocked && counter != icap::Counter::kBlocked) __builtin_trap();
  std::string line;
  for (const AuditEvent& e : events) append_audit_json(line, e, {});
  events.clear();
  if (t.end(body.size(), events) || !events.empty()) __builtin_trap();  // once
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static auto policy =
      load_policy_text(
          "version: 1\nrules:\n"
          "  - id: crl\n    match: {path_suffix: [.crl]}\n    verify: crl\n"
          "  - id: ca\n    match: {hosts: [.example.com], methods: [GET, POST, CONNECT],"
          " ports: [80, 443]}\n"
          "  - id: lan\n    match: {hosts: [lan.example.org], src: [10.0.0.0/8]}\n"
          "    verify: revocation\n"
          "  - id: watch\n    mode: shadow\n    match: {hosts: [.example.com]}\n",
          "fuzz.yaml")
          .policy;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view f[10];
  for (auto& field : f) {
    std::size_t nl = in.find('\n');
    field = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  auto opt = [](std::string_view v) {
    return v == "-" ? std::nullopt : std::optional<std::string_view>(v);
  };
  icap::Translated t = icap::translate({f[0], opt(f[1]), opt(f[2]), opt(f[3])});
  (void)icap::content_length(opt(f[4]));
  (void)icap::status_of(f[5]);
  if (t.ok()) {
    if (t.url.size() > kMaxUrlLength + 1024 + 1024 + 7) __builtin_trap();  // bounded copy
    Request r;
    if (r.parse(t.input())) (void)policy->decide(r, today_utc());
  }

  const unsigned flags = f[7].empty() ? 2u : static_cast<unsigned char>(f[7][0]);
  const unsigned mode = f[7].size() > 1 ? static_cast<unsigned char>(f[7][1]) & 3u : 0u;
  icap::TransactionFacts facts;
  facts.respmod = flags & 1;
  facts.has_body = flags & 2;
  facts.authenticated = flags & 4;
  facts.has_request = !(flags & 8);
  facts.request = {f[0], opt(f[1]), opt(f[2]), opt(f[3])};
  facts.client_sent_mark = flags & 32;
  facts.mark_value = opt(f[9]);
  facts.has_response = facts.respmod && !(flags & 16);
  if (facts.has_response) facts.status = icap::status_of(f[5]);
  facts.content_type = opt(f[6]);
  facts.content_length = opt(f[4]);
  facts.content_encoding = opt(f[8]);
  static constexpr icap::ServiceMode kModes[] = {
      icap::ServiceMode::kVerify, icap::ServiceMode::kDecide, icap::ServiceMode::kBoth,
      icap::ServiceMode::kVerify};
  const unsigned bits = f[7].size() > 1 ? static_cast<unsigned char>(f[7][1]) : 0u;
  const Path path{(bits & 4) != 0, (bits & 8) != 0, (bits & 16) != 0, (bits & 32) != 0,
                  (bits & 64) != 0};
  run_transaction(facts, kModes[mode], policy, in, path);
  return 0;
}
