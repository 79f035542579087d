// The ICAP transaction component: every row of its decision table (icap_transaction.h),
// the outcomes the adapter reports afterwards, the audit events and the counters.
#include "authbypass/icap_transaction.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace authbypass::icap {
namespace {

constexpr std::string_view kPolicy = R"(version: 1
rules:
  - id: crl
    owner: pki-team
    ticket: CHG-1
    match: {hosts: [crl.example.com]}
    verify: crl
  - id: open
    match: {hosts: [open.example.com]}
  - id: tunnel
    match: {hosts: [tunnel.example.com], methods: [CONNECT], ports: [443]}
  - id: ocsp
    match: {hosts: [ocsp.example.com], methods: [GET, POST]}
    verify: ocsp
  - id: lan
    match: {hosts: [lan.example.com], src: [10.0.0.0/8]}
    verify: crl
  - id: ctl
    match: {hosts: [ctl.example.com]}
    verify: ctl
  - id: watch
    mode: shadow
    match: {hosts: [crl.example.com, other.example.com]}
)";

const std::string kSecret(40, 's');

std::string der_len(std::size_t n) {
  if (n < 0x80) return std::string(1, static_cast<char>(n));
  std::string b;
  for (; n > 0; n >>= 8) b.insert(b.begin(), static_cast<char>(n & 0xff));
  return std::string(1, static_cast<char>(0x80 | b.size())) + b;
}
std::string tlv(unsigned tag, const std::string& content) {
  return std::string(1, static_cast<char>(tag)) + der_len(content.size()) + content;
}

// A well-formed (unsigned: the checker checks shape) CRL with a few entries.
std::string crl() {
  std::string entries;
  for (int i = 0; i < 4; ++i)
    entries += tlv(
        0x30, tlv(0x02, std::string(8, static_cast<char>(0x10 + i))) + tlv(0x17, "241201000000Z"));
  const std::string alg = tlv(0x30, tlv(0x06, "\x2a\x86\x48\xce\x3d\x04\x03\x02"));
  const std::string tbs =
      tlv(0x02, std::string(1, '\x01')) + alg +
      tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, "\x55\x04\x03") + tlv(0x0c, "x")))) +
      tlv(0x17, "261202115540Z") + tlv(0x30, entries);
  return tlv(0x30, tlv(0x30, tbs) + alg + tlv(0x03, std::string(33, '\0')));
}

// A DER OCSPRequest for one certificate (SHA-1 CertID).
std::string ocsp_request() {
  const std::string sha1 =
      tlv(0x30, tlv(0x06, "\x2b\x0e\x03\x02\x1a") + std::string("\x05\x00", 2));
  const std::string cert_id =
      tlv(0x30, sha1 + tlv(0x04, std::string(20, 'n')) + tlv(0x04, std::string(20, 'k')) +
                    tlv(0x02, "\x12\x34"));
  return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, cert_id))));
}

class IcapTransactionTest : public ::testing::Test {
 protected:
  IcapTransactionTest() {
    LoadResult r = load_policy_text(kPolicy, "test.yaml");
    EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0]);
    ctx.policy = r.policy;
    ctx.secret = std::make_shared<const std::string>(kSecret);
    ctx.today = today_utc();
  }

  // A RESPMOD (respmod) or REQMOD fact set for `line` (Host from the URL), from 10.1.2.3.
  TransactionFacts facts(std::string_view line, bool respmod, bool has_body) {
    TransactionFacts f;
    f.respmod = respmod;
    f.has_body = has_body;
    f.has_request = true;
    f.request.request_line = line;
    f.request.client_ip = "10.1.2.3";
    if (respmod) {
      f.has_response = true;
      f.status = 200;
    }
    return f;
  }

  void classify(const TransactionFacts& f) { tx.classify(f, ctx); }

  // Ends the transaction; the outcome's event (if any) is events[0].
  std::optional<Counter> end(std::uint64_t bytes = 0) {
    events.clear();
    return tx.end(bytes, events);
  }

  // Feeds `body` to the check and finishes it; true if genuine.
  bool feed_all(const std::string& body) {
    RevocationCheck* c = tx.check();
    if (!c) return false;
    c->feed(body);
    return c->finish() == RevocationCheck::State::kGenuine;
  }

  TransactionContext ctx;
  Transaction tx;
  std::vector<AuditEvent> events;
};

// ---------------------------------------------------------------------------------------
// Verify mode (and RESPMOD in Mode both): messages that came through the hole.

TEST_F(IcapTransactionTest, AuthenticatedUserIsAllowedWithoutEvent) {
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.authenticated = true;
  classify(f);
  EXPECT_EQ(tx.action(), Action::kAllow);
  EXPECT_EQ(end(), std::nullopt);
  EXPECT_TRUE(events.empty());
}

TEST_F(IcapTransactionTest, UnreadableRequestsAreBlocked) {
  TransactionFacts f = facts("", true, true);
  f.has_request = false;
  classify(f);
  EXPECT_EQ(tx.action(), Action::kBlock);
  ASSERT_EQ(end(), Counter::kBlocked);
  EXPECT_EQ(events[0].event, "blocked");
  EXPECT_EQ(events[0].verdict, "blocked (403)");
  EXPECT_EQ(events[0].method, "-");
  EXPECT_EQ(events[0].reason, "no encapsulated HTTP request headers");
  EXPECT_EQ(events[0].status, 200);  // the response's status, as read

  Transaction t2;
  t2.classify(facts("GARBAGE", true, true), ctx);
  EXPECT_EQ(t2.action(), Action::kBlock);
  EXPECT_EQ(t2.outcome(), Outcome::kBlocked);

  Transaction t3;
  t3.classify(facts("GET http://crl.example.com/%zz\x01.crl HTTP/1.1", true, true), ctx);
  EXPECT_EQ(t3.action(), Action::kBlock);
}

TEST_F(IcapTransactionTest, NoServiceOrNoPolicyBlocks) {
  TransactionContext down = ctx;
  down.initialized = false;
  down.mode = ServiceMode::kDecide;  // ignored: a service that did not start decides nothing
  tx.classify(facts("GET http://crl.example.com/a.crl HTTP/1.1", false, false), down);
  EXPECT_EQ(tx.action(), Action::kBlock);
  end();
  EXPECT_EQ(events.at(0).reason, "service not initialized");

  Transaction t2;
  TransactionContext nopolicy = ctx;
  nopolicy.policy = nullptr;
  t2.classify(facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true), nopolicy);
  EXPECT_EQ(t2.action(), Action::kBlock);
  std::vector<AuditEvent> evs;
  t2.end(0, evs);
  EXPECT_EQ(evs.at(0).reason, "no valid policy loaded");
}

TEST_F(IcapTransactionTest, MissingClientIpBlocksWhenRulesRestrictSrc) {
  TransactionFacts f = facts("GET http://lan.example.com/a.crl HTTP/1.1", true, true);
  f.request.client_ip = std::nullopt;
  classify(f);
  EXPECT_EQ(tx.action(), Action::kBlock);
  end();
  EXPECT_EQ(events.at(0).reason,
            "no X-Client-IP (icap_send_client_ip on): rules with src cannot be re-evaluated");

  // A request the policy bypasses anyway needs no client address.
  Transaction t2;
  f.request.request_line = "GET http://crl.example.com/a.crl HTTP/1.1";
  f.content_length = "10";
  t2.classify(f, ctx);
  EXPECT_EQ(t2.action(), Action::kCheck);
}

TEST_F(IcapTransactionTest, ReqmodWithoutBodyLeavesTheRecordToRespmod) {
  classify(facts("GET http://crl.example.com/a.crl HTTP/1.1", false, false));
  EXPECT_EQ(tx.action(), Action::kAllow);
  EXPECT_EQ(end(), std::nullopt);
  EXPECT_TRUE(events.empty());
}

TEST_F(IcapTransactionTest, BypassedConnectIsItsOwnUncheckedRecord) {
  classify(facts("CONNECT tunnel.example.com:443 HTTP/1.1", false, false));
  EXPECT_EQ(tx.action(), Action::kAllow);
  EXPECT_EQ(end(), Counter::kUnchecked);
  EXPECT_EQ(events.at(0).event, "verified");
  EXPECT_EQ(events[0].verdict, "not checked (CONNECT tunnel)");
  EXPECT_EQ(events[0].rule, "tunnel");
}

TEST_F(IcapTransactionTest, ConnectThePolicyNoLongerBypassesIsRefused) {
  classify(facts("CONNECT elsewhere.example.net:443 HTTP/1.1", false, false));
  EXPECT_EQ(tx.action(), Action::kBlock);
  end();
  const std::string reason(events.at(0).reason);
  EXPECT_NE(reason.find("does not bypass the request"), std::string::npos) << reason;
  EXPECT_NE(reason.find(": a CONNECT tunnel cannot be checked, refused"), std::string::npos);
  EXPECT_EQ(reason.find("; "), std::string::npos);  // the note is not repeated
}

TEST_F(IcapTransactionTest, RequestBodyMustBeAnOcspRequest) {
  TransactionFacts f = facts("POST http://ocsp.example.com/ HTTP/1.1", false, true);
  f.content_type = "text/plain";
  classify(f);
  EXPECT_EQ(tx.action(), Action::kBlock);
  end();
  EXPECT_EQ(events.at(0).reason, "Content-Type 'text/plain' is not application/ocsp-request");
  EXPECT_EQ(events[0].content_type, "text/plain");

  Transaction t2;
  f.content_type = "application/ocsp-request";
  f.content_length = "12x";
  t2.classify(f, ctx);
  EXPECT_EQ(t2.action(), Action::kBlock);
  EXPECT_EQ(t2.outcome(), Outcome::kBlocked);

  // A genuine OCSP request writes no event (the response's event is the record).
  Transaction t3;
  const std::string body = ocsp_request();
  const std::string len = std::to_string(body.size());
  f.content_length = len;
  t3.classify(f, ctx);
  ASSERT_EQ(t3.action(), Action::kCheck);
  t3.check()->feed(body);
  ASSERT_EQ(t3.check()->finish(), RevocationCheck::State::kGenuine);
  t3.genuine(false);
  std::vector<AuditEvent> evs;
  EXPECT_EQ(t3.end(body.size(), evs), std::nullopt);
  EXPECT_TRUE(evs.empty());
}

TEST_F(IcapTransactionTest, RequestBodyThePolicyDoesNotBypassIsCheckedAndSaysSo) {
  TransactionFacts f = facts("POST http://elsewhere.example.net/ HTTP/1.1", false, true);
  f.content_type = "application/ocsp-request";
  f.content_length = "4";
  classify(f);
  ASSERT_EQ(tx.action(), Action::kCheck);
  tx.check()->feed("junk");
  tx.check()->finish();
  tx.reject();
  tx.block_page_sent();
  end(4);
  EXPECT_EQ(events.at(0).verdict, "blocked (403)");
  EXPECT_EQ(events[0].status, 403);
  EXPECT_NE(std::string(events[0].reason).find("; this service's policy (sha256 "),
            std::string::npos);
}

TEST_F(IcapTransactionTest, RespmodVerifyNoneAndNoBody) {
  classify(facts("GET http://open.example.com/x HTTP/1.1", true, true));
  EXPECT_EQ(tx.action(), Action::kAllow);
  EXPECT_EQ(end(), Counter::kUnchecked);
  EXPECT_EQ(events.at(0).verdict, "not checked (verify: none)");
  EXPECT_EQ(events[0].rule, "open");

  Transaction t2;
  t2.classify(facts("HEAD http://crl.example.com/a.crl HTTP/1.1", true, false), ctx);
  EXPECT_EQ(t2.action(), Action::kAllow);
  EXPECT_EQ(t2.outcome(), Outcome::kNoBody);
}

TEST_F(IcapTransactionTest, RespmodNeedsResponseHeadersAndAValidLength) {
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.has_response = false;
  f.status = -1;
  classify(f);
  EXPECT_EQ(tx.action(), Action::kBlock);
  end();
  EXPECT_EQ(events.at(0).reason, "no encapsulated HTTP response headers");

  Transaction t2;
  f.has_response = true;
  f.content_length = "-5";
  t2.classify(f, ctx);
  EXPECT_EQ(t2.action(), Action::kBlock);
  std::vector<AuditEvent> evs;
  t2.end(0, evs);
  EXPECT_EQ(evs.at(0).reason, "malformed Content-Length in the response");
}

TEST_F(IcapTransactionTest, GenuineResponseIsVerifiedWithItsKind) {
  const std::string body = crl();
  const std::string len = std::to_string(body.size());
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.content_type = "application/pkix-crl";
  f.content_length = len;
  f.request.user_agent = "Microsoft-CryptoAPI/10.0";
  classify(f);
  ASSERT_EQ(tx.action(), Action::kCheck);
  ASSERT_TRUE(feed_all(body));
  tx.genuine(false);
  EXPECT_EQ(end(body.size()), Counter::kVerifiedCrl);
  // Verify mode writes no shadow events (the helper does); decision mode does.
  ASSERT_EQ(events.size(), 1u);
  const AuditEvent& e = events[0];
  EXPECT_EQ(e.component, "icap");
  EXPECT_EQ(e.event, "verified");
  EXPECT_EQ(e.verdict, "genuine crl");
  EXPECT_EQ(e.rule, "crl");
  EXPECT_EQ(e.owner, "pki-team");
  EXPECT_EQ(e.ticket, "CHG-1");
  EXPECT_EQ(e.policy_sha256, ctx.policy->sha256());
  EXPECT_EQ(e.src, "10.1.2.3");
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.url, "http://crl.example.com/a.crl");
  EXPECT_EQ(e.host, "crl.example.com");
  EXPECT_EQ(e.user_agent, "Microsoft-CryptoAPI/10.0");
  EXPECT_EQ(e.status, 200);
  EXPECT_EQ(e.content_type, "application/pkix-crl");
  EXPECT_EQ(e.bytes, static_cast<std::int64_t>(body.size()));
  EXPECT_EQ(e.reason, "");
}

TEST_F(IcapTransactionTest, ImpostorsAreRejectedAtBeginOrWhileStreaming) {
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.content_type = "text/html";
  classify(f);
  EXPECT_EQ(tx.action(), Action::kBlock);  // begin() refused the content type
  EXPECT_FALSE(std::string(tx.check() ? tx.check()->reason() : "").empty());

  Transaction t2;
  f.content_type = "application/pkix-crl";
  f.content_length = "100000";
  t2.classify(f, ctx);
  ASSERT_EQ(t2.action(), Action::kCheck);
  t2.check()->feed("<html>");
  ASSERT_TRUE(t2.rejected());
  t2.reject();
  t2.aborted(40000);
  std::vector<AuditEvent> evs;
  EXPECT_EQ(t2.end(40006, evs), Counter::kBlocked);
  EXPECT_EQ(evs.at(0).verdict, "aborted after 40000 bytes");
  EXPECT_EQ(evs[0].event, "blocked");
  EXPECT_EQ(evs[0].bytes, 40006);
  EXPECT_FALSE(evs[0].reason.empty());
}

TEST_F(IcapTransactionTest, CheckWithoutVerdictIsIncomplete) {
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.content_length = "100";
  classify(f);
  ASSERT_EQ(tx.action(), Action::kCheck);
  EXPECT_EQ(end(10), Counter::kBlocked);
  EXPECT_EQ(events.at(0).verdict, "incomplete");
  EXPECT_EQ(events[0].reason, "ICAP transaction ended before the end of the body");
  EXPECT_EQ(end(), std::nullopt);  // once
}

TEST_F(IcapTransactionTest, PreviewIdentificationIsCountedUnchecked) {
  const std::string body = crl();
  const std::string len = std::to_string(body.size());
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.content_length = len;
  classify(f);
  ASSERT_EQ(tx.action(), Action::kCheck);
  tx.check()->feed(body.substr(0, 64));
  ASSERT_TRUE(tx.check()->identified());
  tx.genuine(true);
  EXPECT_EQ(end(64), Counter::kUnchecked);
  EXPECT_EQ(events.at(0).verdict, "identified crl (preview)");
}

// The preview rule: in VerifyMode preview an identified RESPMOD body passes on its preview;
// in full mode, or with an empty preview, it is read on.
TEST_F(IcapTransactionTest, PreviewPassesOnlyInPreviewModeWithData) {
  const std::string body = crl();
  const std::string len = std::to_string(body.size());
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.content_length = len;
  for (VerifyMode vm : {VerifyMode::kFull, VerifyMode::kPreview}) {
    ctx.verify_mode = vm;
    Transaction t;
    t.classify(f, ctx);
    ASSERT_EQ(t.action(), Action::kCheck);
    EXPECT_EQ(t.preview_seen(0, false), BodyVerdict::kMore);  // no data in the preview
    t.check()->feed(body.substr(0, 64));
    ASSERT_TRUE(t.check()->identified());
    const BodyVerdict v = t.preview_seen(64, false);
    std::vector<AuditEvent> evs;
    if (vm == VerifyMode::kFull) {
      EXPECT_EQ(v, BodyVerdict::kMore);
      EXPECT_EQ(t.outcome(), Outcome::kNone);
    } else {
      EXPECT_EQ(v, BodyVerdict::kGenuine);
      EXPECT_EQ(t.end(64, evs), Counter::kUnchecked);
      EXPECT_EQ(evs.at(0).verdict, "identified crl (preview)");
    }
  }
  // A REQMOD body (an OCSP request) is never passed on its preview.
  ctx.verify_mode = VerifyMode::kPreview;
  const std::string req = ocsp_request();
  const std::string rlen = std::to_string(req.size());
  TransactionFacts q = facts("POST http://ocsp.example.com/ HTTP/1.1", false, true);
  q.content_type = "application/ocsp-request";
  q.content_length = rlen;
  classify(q);
  ASSERT_EQ(tx.action(), Action::kCheck);
  tx.check()->feed(req.substr(0, 8));
  EXPECT_EQ(tx.preview_seen(8, false), BodyVerdict::kMore);
}

// The whole body in the preview (or at its end): the check's verdict, given once.
TEST_F(IcapTransactionTest, BodyFinishedGivesTheVerdict) {
  const std::string body = crl();
  const std::string len = std::to_string(body.size());
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  f.content_length = len;
  classify(f);
  tx.check()->feed(body);
  EXPECT_EQ(tx.preview_seen(body.size(), true), BodyVerdict::kGenuine);
  EXPECT_EQ(tx.body_finished(), BodyVerdict::kGenuine);  // finish() once, same verdict
  EXPECT_EQ(end(body.size()), Counter::kVerifiedCrl);
  EXPECT_EQ(events.at(0).verdict, "genuine crl");

  Transaction t2;  // truncated: rejected with the check's reason
  t2.classify(f, ctx);
  t2.check()->feed(body.substr(0, body.size() - 3));
  EXPECT_EQ(t2.body_finished(), BodyVerdict::kRejected);
  std::vector<AuditEvent> evs;
  EXPECT_EQ(t2.end(body.size() - 3, evs), Counter::kBlocked);
  EXPECT_FALSE(evs.at(0).reason.empty());

  Transaction t3;  // rejected while in the preview
  f.content_length = "5000";
  t3.classify(f, ctx);
  t3.check()->feed("<html>");
  EXPECT_EQ(t3.preview_seen(6, false), BodyVerdict::kRejected);
  EXPECT_EQ(t3.outcome(), Outcome::kBlocked);
}

// A bypassed request body is capped at min(OcspMaxBytes, kMaxRequestBody); a response body
// is bounded by its check, not by this cap.
TEST_F(IcapTransactionTest, RequestBodyCapRejectsWithTheEnginesReason) {
  ctx.limits.ocsp = 1000;
  TransactionFacts q = facts("POST http://ocsp.example.com/ HTTP/1.1", false, true);
  q.content_type = "application/ocsp-request";
  classify(q);
  ASSERT_EQ(tx.action(), Action::kCheck);
  EXPECT_EQ(tx.body_cap(), 1000u);
  EXPECT_FALSE(tx.over_body_cap(1000));
  EXPECT_TRUE(tx.over_body_cap(1001));
  EXPECT_FALSE(tx.over_body_cap(5000));  // once
  EXPECT_EQ(end(1001), Counter::kBlocked);
  EXPECT_EQ(events.at(0).reason, "request body over the OCSP size cap");

  ctx.limits.ocsp = 10 * 1024 * 1024;
  Transaction t2;
  t2.classify(q, ctx);
  EXPECT_EQ(t2.body_cap(), kMaxRequestBody);

  Transaction t3;
  TransactionFacts r = facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true);
  t3.classify(r, ctx);
  ASSERT_EQ(t3.action(), Action::kCheck);
  EXPECT_FALSE(t3.over_body_cap(kMaxRequestBody + 1));
}

TEST_F(IcapTransactionTest, ResponseThePolicyNoLongerBypassesIsCheckedAsRevocation) {
  TransactionFacts f = facts("GET http://elsewhere.example.net/a.crl HTTP/1.1", true, true);
  f.content_length = "100";
  classify(f);
  ASSERT_EQ(tx.action(), Action::kCheck);
  tx.check()->feed("<html>");
  tx.reject();
  tx.block_page_sent();
  end();
  const std::string reason(events.at(0).reason);
  EXPECT_NE(reason.find("does not bypass the request (reloaded since the bypass was decided): "
                        "checked as verify revocation"),
            std::string::npos)
      << reason;
  EXPECT_EQ(events[0].rule, "");
}

TEST_F(IcapTransactionTest, BothModeRespmodUsesTheMarkedRule) {
  ctx.mode = ServiceMode::kBoth;
  const std::string mark = kSecret + " ctl";
  TransactionFacts f = facts("GET http://elsewhere.example.net/x.stl HTTP/1.1", true, true);
  f.content_length = "100";
  f.mark_value = mark;
  classify(f);
  ASSERT_EQ(tx.action(), Action::kCheck);
  EXPECT_EQ(tx.rule_id(), "ctl");
  end();
  EXPECT_NE(std::string(events.at(0).reason).find("checked as verify ctl"), std::string::npos);

  // A mark naming a rule this policy lacks: audited under that id, checked as revocation.
  Transaction t2;
  const std::string gone = kSecret + " retired-rule";
  f.mark_value = gone;
  t2.classify(f, ctx);
  EXPECT_EQ(t2.rule_id(), "retired-rule");
  // A mark with another secret names nothing.
  Transaction t3;
  const std::string forged = std::string(40, 'x') + " ctl";
  f.mark_value = forged;
  t3.classify(f, ctx);
  EXPECT_EQ(t3.rule_id(), "");
  // Verify mode ignores the mark.
  Transaction t4;
  ctx.mode = ServiceMode::kVerify;
  f.mark_value = mark;
  t4.classify(f, ctx);
  EXPECT_EQ(t4.rule_id(), "");
}

// ---------------------------------------------------------------------------------------
// Decision mode.

TEST_F(IcapTransactionTest, DecideRespmodIsAllowedWithAWarning) {
  ctx.mode = ServiceMode::kDecide;
  classify(facts("GET http://crl.example.com/a.crl HTTP/1.1", true, true));
  EXPECT_EQ(tx.action(), Action::kAllow);
  EXPECT_EQ(tx.warning(), Warning::kRespmodInDecide);
  EXPECT_EQ(end(), std::nullopt);
}

TEST_F(IcapTransactionTest, DecideMarksABypassedRequest) {
  ctx.mode = ServiceMode::kDecide;
  classify(facts("GET http://crl.example.com/a.crl HTTP/1.1", false, false));
  EXPECT_TRUE(tx.decides());
  EXPECT_EQ(tx.action(), Action::kModify);
  EXPECT_EQ(tx.mark(), "X-Authbypass: " + kSecret + " crl");
  EXPECT_FALSE(tx.strip_marks());
  EXPECT_EQ(end(), Counter::kMarked);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "bypass");
  EXPECT_EQ(events[0].verdict, "marked");
  EXPECT_EQ(events[0].rule, "crl");
  EXPECT_EQ(events[1].event, "shadow");
  EXPECT_EQ(events[1].rule, "watch");
  EXPECT_EQ(events[1].url, "http://crl.example.com/a.crl");
  EXPECT_EQ(events[1].policy_sha256, ctx.policy->sha256());

  Transaction t2;
  t2.classify(facts("CONNECT tunnel.example.com:443 HTTP/1.1", false, false), ctx);
  EXPECT_EQ(t2.outcome(), Outcome::kMarkedTunnel);
  EXPECT_EQ(verdict_text(t2.outcome(), "", 0), "marked (CONNECT tunnel, not checked)");
}

TEST_F(IcapTransactionTest, DecideLeavesTheRestAloneButAuditsShadows) {
  ctx.mode = ServiceMode::kBoth;
  classify(facts("GET http://other.example.com/ HTTP/1.1", false, false));
  EXPECT_EQ(tx.action(), Action::kAllow);
  EXPECT_TRUE(tx.mark().empty());
  EXPECT_EQ(end(), std::nullopt);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "shadow");

  // Authenticated, no secret, no request headers: 204, nothing to mark.
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", false, false);
  f.authenticated = true;
  Transaction t2;
  t2.classify(f, ctx);
  EXPECT_EQ(t2.action(), Action::kAllow);
  Transaction t3;
  TransactionContext nosecret = ctx;
  nosecret.secret = nullptr;
  t3.classify(facts("GET http://crl.example.com/a.crl HTTP/1.1", false, false), nosecret);
  EXPECT_EQ(t3.action(), Action::kAllow);
  Transaction t4;
  f.has_request = false;
  t4.classify(f, ctx);
  EXPECT_EQ(t4.action(), Action::kAllow);
}

TEST_F(IcapTransactionTest, DecideStripsAForgedMarkAndNeverMarks) {
  ctx.mode = ServiceMode::kDecide;
  TransactionFacts f = facts("GET http://crl.example.com/a.crl HTTP/1.1", false, false);
  f.client_sent_mark = true;
  f.authenticated = true;  // even for an authenticated user
  classify(f);
  EXPECT_EQ(tx.action(), Action::kModify);
  EXPECT_TRUE(tx.strip_marks());
  EXPECT_TRUE(tx.mark().empty());
  EXPECT_EQ(end(), Counter::kForged);
  EXPECT_EQ(events.at(0).event, "blocked");
  EXPECT_EQ(events[0].verdict, "forged mark removed");
}

TEST_F(IcapTransactionTest, DecideMarksAnOcspPostOnlyOnceGenuine) {
  ctx.mode = ServiceMode::kDecide;
  const std::string body = ocsp_request();
  const std::string len = std::to_string(body.size());
  TransactionFacts f = facts("POST http://ocsp.example.com/ HTTP/1.1", false, true);
  f.content_type = "application/ocsp-request";
  f.content_length = len;
  classify(f);
  ASSERT_EQ(tx.action(), Action::kCheck);
  EXPECT_EQ(tx.mark(), "X-Authbypass: " + kSecret + " ocsp");
  ASSERT_TRUE(feed_all(body));
  tx.genuine(false);
  EXPECT_EQ(end(body.size()), Counter::kMarked);
  EXPECT_EQ(events.at(0).verdict, "marked, genuine ocsp-request");

  // Editing the headers failed: no mark, a 403.
  Transaction t2;
  f.has_body = false;
  t2.classify(f, ctx);
  ASSERT_EQ(t2.action(), Action::kModify);
  t2.edit_failed();
  t2.block_page_sent();
  EXPECT_TRUE(t2.mark().empty());
  std::vector<AuditEvent> evs;
  EXPECT_EQ(t2.end(0, evs), Counter::kBlocked);
  EXPECT_EQ(evs.at(0).reason, "the request's headers could not be edited");
  EXPECT_EQ(evs[0].status, 403);
}

TEST_F(IcapTransactionTest, DecideWarnsWithoutClientIp) {
  ctx.mode = ServiceMode::kDecide;
  TransactionFacts f = facts("GET http://lan.example.com/a.crl HTTP/1.1", false, false);
  f.request.client_ip = std::nullopt;
  classify(f);
  EXPECT_EQ(tx.action(), Action::kAllow);
  EXPECT_EQ(tx.warning(), Warning::kNoClientIp);
}

// needs(): the facts and state the adapter leaves unread change nothing. Every mode, type
// and user, for a bypassed body, a forged mark and a request no rule bypasses: classified
// with only the needed facts, the transaction decides as with all of them.
TEST_F(IcapTransactionTest, NeededFactsAreEnoughToDecide) {
  const std::string body = crl();
  const std::string len = std::to_string(body.size());
  const std::string mark_value = kSecret + " crl";
  int reduced = 0;
  for (bool initialized : {true, false})
    for (ServiceMode mode : {ServiceMode::kVerify, ServiceMode::kDecide, ServiceMode::kBoth})
      for (bool respmod : {false, true})
        for (bool authenticated : {false, true})
          for (std::string_view line : {"GET http://crl.example.com/a.crl HTTP/1.1",
                                        "GET http://elsewhere.example.net/ HTTP/1.1"})
            for (bool forged : {false, true}) {
              TransactionFacts full = facts(line, respmod, true);
              full.authenticated = authenticated;
              full.client_sent_mark = forged;
              full.mark_value = mark_value;
              full.content_type = "application/pkix-crl";
              full.content_length = len;
              TransactionContext c = ctx;
              c.initialized = initialized;
              c.mode = mode;
              Transaction a;
              a.classify(full, c);

              const FactsNeeded n = Transaction::needs(initialized, mode, respmod, authenticated);
              TransactionFacts part;
              part.respmod = respmod;
              part.has_body = true;
              part.authenticated = authenticated;
              if (n.http_headers) {
                part = full;
                if (!n.client_sent_mark) part.client_sent_mark = false;
                if (!n.mark_value) part.mark_value = std::nullopt;
              }
              TransactionContext pc = c;
              if (!n.policy) pc.policy = nullptr;
              if (!n.secret) pc.secret = nullptr;
              if (!n.http_headers || !n.policy || !n.secret) ++reduced;
              Transaction b;
              b.classify(part, pc);
              SCOPED_TRACE(testing::Message() << initialized << static_cast<int>(mode) << respmod
                                              << authenticated << line << forged);
              EXPECT_EQ(a.action(), b.action());
              EXPECT_EQ(a.outcome(), b.outcome());
              EXPECT_EQ(a.warning(), b.warning());
              EXPECT_EQ(a.strip_marks(), b.strip_marks());
              EXPECT_EQ(a.mark(), b.mark());
              EXPECT_EQ(a.rule_id(), b.rule_id());
              std::vector<AuditEvent> ea, eb;
              EXPECT_EQ(a.end(0, ea), b.end(0, eb));
              EXPECT_EQ(ea.size(), eb.size());
            }
  EXPECT_GT(reduced, 0);
  // What is read at all: nothing for an authenticated RESPMOD or Mode decide's RESPMOD;
  // the secret and the marks only in decision mode.
  EXPECT_FALSE(Transaction::needs(true, ServiceMode::kVerify, true, true).http_headers);
  EXPECT_FALSE(Transaction::needs(true, ServiceMode::kDecide, true, false).http_headers);
  EXPECT_TRUE(Transaction::needs(true, ServiceMode::kDecide, false, true).client_sent_mark);
  EXPECT_FALSE(Transaction::needs(true, ServiceMode::kVerify, false, false).secret);
  EXPECT_TRUE(Transaction::needs(true, ServiceMode::kBoth, true, false).mark_value);
  EXPECT_FALSE(Transaction::needs(false, ServiceMode::kBoth, true, false).policy);
}

TEST_F(IcapTransactionTest, InternalErrorBlocks) {
  tx.block("internal error");
  EXPECT_EQ(end(), Counter::kBlocked);
  EXPECT_EQ(events.at(0).reason, "internal error");
}

// ---------------------------------------------------------------------------------------
// Vocabulary: every outcome has one event name; every counter one label.

TEST(IcapOutcome, EventsVerdictsAndCounters) {
  EXPECT_EQ(event_name(Outcome::kNone), "");
  EXPECT_EQ(event_name(Outcome::kIncomplete), "blocked");
  EXPECT_EQ(event_name(Outcome::kNoBody), "verified");
  EXPECT_EQ(verdict_text(Outcome::kGenuine, "ocsp-request", 0), "genuine ocsp-request");
  EXPECT_EQ(counter_of(Outcome::kGenuine, RevocationKind::kOcspRequest),
            Counter::kVerifiedOcspRequest);
  EXPECT_EQ(counter_of(Outcome::kGenuine, RevocationKind::kOcspResponse), Counter::kVerifiedOcsp);
  EXPECT_EQ(counter_of(Outcome::kGenuine, RevocationKind::kPkcs7), Counter::kVerifiedPkcs7);
  EXPECT_EQ(counter_of(Outcome::kGenuine, RevocationKind::kCertificate), Counter::kVerifiedCert);
  EXPECT_EQ(counter_of(Outcome::kGenuine, RevocationKind::kCtl), Counter::kVerifiedCtl);
  EXPECT_EQ(counter_of(Outcome::kGenuine, std::nullopt), Counter::kUnchecked);
  EXPECT_EQ(counter_of(Outcome::kIdentified, RevocationKind::kCrl), Counter::kUnchecked);
  EXPECT_EQ(counter_of(Outcome::kMarkedGenuine, RevocationKind::kOcspRequest), Counter::kMarked);
  EXPECT_EQ(counter_of(Outcome::kAborted, std::nullopt), Counter::kBlocked);
  EXPECT_EQ(counter_of(Outcome::kNone, std::nullopt), std::nullopt);
  EXPECT_EQ(kCounterCount, 10u);
  EXPECT_EQ(counter_label(Counter::kVerifiedCrl), "verified crl");
  EXPECT_EQ(counter_label(Counter::kForged), "forged mark removed");
}

}  // namespace
}  // namespace authbypass::icap
