// libFuzzer target: the ICAP service's translation of an encapsulated request (request
// line, Host, User-Agent, X-Client-IP, Content-Length, status line, Content-Type) into the
// engine's input, then the decision, then the whole transaction (icap::Transaction) in
// every service mode with the body that follows. Fields are separated by LF in the input:
//   request line, Host, User-Agent, X-Client-IP, Content-Length, status line,
//   Content-Type, flags, Content-Encoding, X-Authbypass value, body (the rest).
// "-" is an absent header. Flags: one character whose bits say RESPMOD (1), body (2),
// X-Authenticated-User (4), no request headers (8), no response headers (16), a client-sent
// mark (32); the next character's low two bits the mode (verify, decide, both).
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

// The transaction's invariants: what a message from the hole may never get.
void run_transaction(const icap::TransactionFacts& f, icap::ServiceMode mode,
                     const std::shared_ptr<const Policy>& policy, std::string_view body) {
  icap::TransactionContext c;
  c.mode = mode;
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
  // A response through the hole with a body is never passed unchecked, unless the
  // service's own policy bypasses it by a rule with verify: none.
  if (f.respmod && mode != icap::ServiceMode::kDecide && !f.authenticated && f.has_body &&
      t.action() == icap::Action::kAllow) {
    const Rule* r = policy->find_rule(t.rule_id());
    if (t.outcome() != icap::Outcome::kVerifyNone || !r || r->verify != Verify::kNone)
      __builtin_trap();
  }
  if (t.action() == icap::Action::kCheck) {
    RevocationCheck* check = t.check();
    if (!check) __builtin_trap();
    if (!t.rejected()) check->feed(body);
    if (t.rejected()) {
      t.reject();
      t.block_page_sent();
    } else if (check->finish() == RevocationCheck::State::kGenuine) {
      t.genuine(false);
    } else {
      t.reject();
    }
  }
  std::vector<AuditEvent> events;
  const auto counter = t.end(body.size(), events);
  if (counter && (events.empty() || events[0].event.empty() || events[0].verdict.empty()))
    __builtin_trap();
  if (counter && *counter == icap::Counter::kMarked && t.mark().empty()) __builtin_trap();
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
  run_transaction(facts, kModes[mode], policy, in);
  return 0;
}
