// `squid-config --mode icap`: the Squid side of ICAP decision mode (docs/architecture.md "ICAP
// service").
#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "authbypass/squid_config.h"

namespace authbypass {
namespace {

const std::string kSecret(64, 'a');
const std::string kOld(64, 'b');

SquidConfigOptions icap_options() {
  SquidConfigOptions o;
  o.mode = SquidConfigMode::kIcap;
  o.secret = kSecret;
  return o;
}

SquidConfig generate(SquidConfigOptions o) {
  LoadResult r = load_policy_text(
      "version: 1\nrules:\n"
      "  - id: crl\n    match: {path_suffix: [.crl]}\n"
      "  - id: ocsp\n    match: {hosts: [ocsp.example.com], methods: [GET, POST]}\n",
      "p.yaml");
  EXPECT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  return squid_config(*r.policy, o);
}

std::vector<std::string> directives(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') out.push_back(line);
  return out;
}

// Index of a directive line; -1 when absent.
long at(const std::vector<std::string>& d, const std::string& line) {
  for (std::size_t i = 0; i < d.size(); ++i)
    if (d[i] == line) return static_cast<long>(i);
  return -1;
}

TEST(SquidConfigIcap, TheVerifiedRecipe) {
  auto cfg = generate(icap_options());
  auto d = directives(cfg.text);
  // http_access: the guard first, credentials authenticated there (the user name in the
  // access log), the rest allowed on to the REQMOD decision.
  long guard = at(d, "http_access deny authbypass_client_mark");
  long creds = at(d, "http_access allow localnet authbypass_has_creds authbypass_auth");
  long rest = at(d, "http_access allow localnet !authbypass_has_creds");
  ASSERT_GE(guard, 0) << cfg.text;
  EXPECT_LT(guard, creds);
  EXPECT_LT(creds, rest);
  EXPECT_GE(at(d, "acl authbypass_client_mark req_header X-Authbypass ."), 0);
  EXPECT_GE(at(d, "acl authbypass_has_creds req_header Proxy-Authorization ."), 0);
  EXPECT_GE(at(d, "acl authbypass_auth proxy_auth REQUIRED"), 0);
  // REQMOD: prefiltered, never for requests with credentials.
  EXPECT_GE(at(d,
               "icap_service authbypass_req reqmod_precache bypass=1 max-conn=20 "
               "on-overload=wait icap://127.0.0.1:1344/authbypass"),
            0);
  long no_creds = at(d, "adaptation_access authbypass_req deny authbypass_has_creds");
  long cand = at(d, "adaptation_access authbypass_req allow authbypass_candidates");
  EXPECT_GE(no_creds, 0);
  EXPECT_LT(no_creds, cand);
  EXPECT_GE(at(d, "adaptation_access authbypass_req deny all"), cand);
  EXPECT_NE(cfg.text.find("acl authbypass_candidates any-of ab_crl ab_ocsp\n"), std::string::npos);
  // After adaptation: the secret, then a blank; marked before proxy_auth.
  EXPECT_GE(at(d, "acl authbypass_marked req_header X-Authbypass ^" + kSecret + "\\s"), 0);
  long marked = at(d, "adapted_http_access allow authbypass_marked");
  long auth = at(d, "adapted_http_access allow authbypass_auth");
  EXPECT_GE(marked, 0);
  EXPECT_LT(marked, auth);
  EXPECT_LT(auth, at(d, "adapted_http_access deny all"));
  EXPECT_GE(at(d, "request_header_access X-Authbypass deny all"), 0);
  EXPECT_GE(at(d, "request_header_access Via deny authbypass_marked"), 0);
  // RESPMOD for marked requests only, failing closed.
  EXPECT_GE(at(d,
               "icap_service authbypass_resp respmod_precache bypass=0 max-conn=20 "
               "on-overload=wait icap://127.0.0.1:1344/authbypass"),
            0);
  EXPECT_GE(at(d, "adaptation_access authbypass_resp allow authbypass_marked"), 0);
  EXPECT_GE(at(d, "icap_send_client_ip on"), 0);
  // Squid's cache never answers a marked request, and a request for part of an object
  // never reaches the decision (so it is never marked), each after its ACL's definition.
  long range_acl = at(d, "acl authbypass_range any-of authbypass_hdr_range "
                         "authbypass_hdr_request_range authbypass_hdr_if_range");
  long no_range = at(d, "adaptation_access authbypass_req deny authbypass_range");
  ASSERT_GE(range_acl, 0) << cfg.text;
  EXPECT_LT(range_acl, no_range);
  EXPECT_LT(no_range, cand);
  long marked_acl = at(d, "acl authbypass_marked req_header X-Authbypass ^" + kSecret + "\\s");
  EXPECT_LT(marked_acl, at(d, "cache deny authbypass_marked"));
  // Failed transactions (late rejections among them) never suspend the service.
  EXPECT_GE(at(d, "icap_service_failure_limit -1"), 0);
  EXPECT_LT(marked_acl, at(d, "send_hit deny authbypass_marked"));
  // No helper in this mode.
  EXPECT_EQ(cfg.text.find("external_acl_type"), std::string::npos);
  EXPECT_EQ(cfg.text.find("http_access allow authbypass_candidates authbypass"), std::string::npos);
  EXPECT_NE(cfg.text.find("THIS FILE HOLDS THE SHARED SECRET"), std::string::npos);
}

// Squid's own answers to a marked request (error pages that echo the request with %R or
// %W, TRACE with Max-Forwards: 0) never reach the client: reset (a fixed 5-byte body in
// Squid 5.7, no template), and no request data in any page's mailto link.
TEST(SquidConfigIcap, SquidMadeAnswersToMarkedRequestsAreReset) {
  auto cfg = generate(icap_options());
  const std::string& t = cfg.text;
  auto has_line = [&](const std::string& l) {
    return t.find("\n" + l + "\n") != std::string::npos;
  };
  EXPECT_TRUE(has_line("email_err_data off")) << t;
  EXPECT_TRUE(has_line("acl authbypass_squid_reply rep_header X-Squid-Error ."));
  EXPECT_TRUE(has_line("acl authbypass_trace method TRACE"));
  EXPECT_TRUE(has_line("http_reply_access deny authbypass_marked authbypass_squid_reply"));
  EXPECT_TRUE(has_line("http_reply_access deny authbypass_marked authbypass_trace"));
  EXPECT_TRUE(has_line("deny_info TCP_RESET authbypass_squid_reply"));
  EXPECT_TRUE(has_line("deny_info TCP_RESET authbypass_trace"));
  EXPECT_TRUE(has_line("request_header_access X-Authbypass deny all"));
  // The marked ACL is defined before the lines that use it.
  EXPECT_LT(t.find("acl authbypass_marked "), t.find("http_reply_access"));
  // Only deny lines: Squid's implicit last rule (the opposite of the last line) allows the rest.
  for (std::size_t p = t.find("http_reply_access"); p != std::string::npos;
       p = t.find("http_reply_access", p + 1)) {
    EXPECT_EQ(t.compare(p, 23, "http_reply_access deny "), 0);
  }
}

TEST(SquidConfigIcap, RotationNoPrefilterClientsAndUrl) {
  auto o = icap_options();
  o.previous_secret = kOld;
  o.prefilter = false;
  o.clients = "office";
  o.icap_url = "icap://icap-pool.example:1344/authbypass";
  auto cfg = generate(o);
  auto d = directives(cfg.text);
  EXPECT_GE(at(d, "acl authbypass_marked req_header X-Authbypass ^" + kSecret + "\\s ^" + kOld +
                      "\\s"), 0) << cfg.text;
  EXPECT_GE(at(d, "adaptation_access authbypass_req allow all"), 0);
  EXPECT_LT(at(d, "adaptation_access authbypass_req deny authbypass_range"),
            at(d, "adaptation_access authbypass_req allow all"));
  EXPECT_GE(at(d, "cache deny authbypass_marked"), 0);
  EXPECT_GE(at(d, "send_hit deny authbypass_marked"), 0);
  EXPECT_EQ(cfg.text.find("authbypass_candidates"), std::string::npos);
  // No prefilter, but Squid's cache still keeps nothing for a URL a rule could bypass
  // (hosts and paths only: no method, port, User-Agent or client ACLs).
  EXPECT_GE(at(d, "cache deny authbypass_candidate_urls"), 0) << cfg.text;
  EXPECT_GE(at(d, "send_hit deny authbypass_candidate_urls"), 0);
  for (const char* part : {"_method method", "_port port", "_ua browser", " all-of ab_"})
    EXPECT_EQ(cfg.text.find(part), std::string::npos) << part << "\n" << cfg.text;
  EXPECT_GE(at(d, "http_access allow office !authbypass_has_creds"), 0);
  EXPECT_GE(at(d,
               "icap_service authbypass_req reqmod_precache bypass=1 max-conn=20 "
               "on-overload=wait icap://icap-pool.example:1344/authbypass"),
            0);
}

TEST(SquidConfigIcap, BadSecretsAndNamesAreRefused) {
  auto o = icap_options();
  o.secret.clear();
  EXPECT_THROW(generate(o), std::invalid_argument);
  o.secret = "short";
  EXPECT_THROW(generate(o), std::invalid_argument);
  o.secret = std::string(40, 'a') + ".*";
  EXPECT_THROW(generate(o), std::invalid_argument);
  o = icap_options();
  o.previous_secret = "x y";
  EXPECT_THROW(generate(o), std::invalid_argument);
  o = icap_options();
  o.clients = "a b";
  EXPECT_THROW(generate(o), std::invalid_argument);
  o = icap_options();
  o.icap_url.clear();
  EXPECT_THROW(generate(o), std::invalid_argument);
}

TEST(SquidConfigIcap, HelperModeIsUnchangedByTheNewOptions) {
  SquidConfigOptions plain;
  SquidConfigOptions with = plain;
  with.secret = kSecret;  // ignored outside decision mode
  with.prefilter = false;
  EXPECT_EQ(generate(plain).text, generate(with).text);
  EXPECT_NE(generate(plain).text.find("external_acl_type authbypass"), std::string::npos);
}

}  // namespace
}  // namespace authbypass
