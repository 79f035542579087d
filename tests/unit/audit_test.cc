// Audit events: exact JSON, and no client byte can split or forge a line.
#include "authbypass/audit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace authbypass {
namespace {

std::chrono::system_clock::time_point at_ms(long long ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

TEST(Audit, ExactLine) {
  AuditEvent e;
  e.component = "helper";
  e.event = "bypass";
  e.rule = "crl-files";
  e.owner = "secops@example.com";
  e.src = "10.1.2.3";
  e.method = "GET";
  e.url = "http://crl.verisign.com/pca3.crl";
  e.host = "crl.verisign.com";
  e.user_agent = "Microsoft-CryptoAPI/6.1";
  e.status = 200;
  e.bytes = 0;
  std::string out;
  append_audit_json(out, e, at_ms(1795000000123));
  EXPECT_EQ(out,
            "{\"ts\":\"2026-11-18T11:06:40.123Z\",\"component\":\"helper\",\"event\":\"bypass\","
            "\"rule\":\"crl-files\",\"owner\":\"secops@example.com\",\"src\":\"10.1.2.3\","
            "\"method\":\"GET\",\"url\":\"http://crl.verisign.com/pca3.crl\","
            "\"host\":\"crl.verisign.com\",\"user_agent\":\"Microsoft-CryptoAPI/6.1\","
            "\"status\":200,\"bytes\":0}\n");
}

TEST(Audit, PrecomputedFixedFieldsGiveTheSameLine) {
  AuditEvent e;
  e.component = "helper";
  e.event = "bypass";
  e.rule = "crl-files";
  e.owner = "sec\"ops";
  e.ticket = "T-1";
  e.policy_sha256 = "abc";
  e.src = "10.0.0.1";
  e.url = "http://a.test/x.crl";
  e.user_agent = "UA \xe2\x80\xa8 x";
  std::string plain, fixed;
  append_audit_json(plain, e, at_ms(1795000000123));
  const std::string f = audit_fixed_fields(e);
  e.fixed_json = f;
  e.rule = "ignored-when-fixed";
  append_audit_json(fixed, e, at_ms(1795000000123));
  EXPECT_EQ(plain, fixed);
  // Long plain runs and a special byte at every position of an 8-byte block.
  for (std::size_t pos = 0; pos < 20; ++pos) {
    std::string s(20, 'a');
    s[pos] = '"';
    std::string out;
    append_json_string(out, s);
    std::string want = "\"" + std::string(pos, 'a') + "\\\"" + std::string(19 - pos, 'a') + "\"";
    EXPECT_EQ(out, want) << pos;
  }
}

// request_json (the request's fields escaped once) gives the same line as the fields,
// clean or not, with and without fixed_json, for helper and ICAP events; and the short
// fields (8-15 bytes) are escaped whatever the position of the special byte.
TEST(Audit, PrecomputedRequestFieldsGiveTheSameLine) {
  const char* uas[] = {"Microsoft-CryptoAPI/10.0", "UA \"q\" \xe2\x80\xa8 x", "", "\x01"};
  const char* srcs[] = {"10.0.0.1", "192.168.100.200", "2001:db8::1", "10.0.0.\"1"};
  for (const char* ua : uas) {
    for (const char* src : srcs) {
      for (bool icap : {false, true}) {
        for (bool fixed : {false, true}) {
          AuditEvent e;
          e.component = icap ? "icap" : "helper";
          e.event = "bypass";
          e.rule = "crl-files";
          e.owner = "secops";
          e.policy_sha256 = "abc";
          e.src = src;
          e.method = "GET";
          e.url = "http://a.test/x.crl";
          e.host = "a.test";
          e.user_agent = ua;
          if (icap) {
            e.status = 200;
            e.content_type = "application/pkix-crl";
            e.bytes = 12;
            e.verdict = "ok";
          }
          std::string f;
          if (fixed) {
            f = audit_fixed_fields(e);
            e.fixed_json = f;
          }
          std::string want;
          append_audit_json(want, e, at_ms(1795000000123));
          std::string req;
          append_audit_request_fields(req, e);
          e.request_json = req;
          e.src = e.method = e.url = e.host = e.user_agent = "ignored when request_json is set";
          std::string got;
          append_audit_json(got, e, at_ms(1795000000123));
          EXPECT_EQ(got, want) << ua << " " << src << " " << icap << fixed;
        }
      }
    }
  }
  for (std::size_t n = 8; n < 16; ++n) {
    for (std::size_t pos = 0; pos < n; ++pos) {
      for (char bad : {'"', '\\', '\x1f', '\x7f'}) {
        std::string src(n, '1');
        src[pos] = bad;
        AuditEvent e;
        e.component = "helper";
        e.event = "bypass";
        e.src = src;
        std::string out;
        append_audit_json(out, e, at_ms(1795000000123));
        EXPECT_EQ(out.find(std::string(1, bad)) == std::string::npos || bad == '"' || bad == '\\',
                  true)
            << n << " " << pos;
        std::string esc;
        append_json_string(esc, src);
        EXPECT_NE(out.find(",\"src\":" + esc), std::string::npos) << n << " " << pos << " " << out;
      }
    }
  }
}

TEST(Audit, ClientBytesCannotSplitOrForgeALine) {
  std::string out;
  append_json_string(out, "a\"b\\c\nd\re\tf\x01g\x7fh");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh\"");
  out.clear();
  append_json_string(out, "x\xe2\x80\xa8y\xc2\x85z");  // U+2028 and C1 NEL
  EXPECT_EQ(out, "\"x\\u2028y\\u0085z\"");
  out.clear();
  append_json_string(out, "bad\xff\xc3(utf8 \xc3\xbc");
  EXPECT_EQ(out, "\"bad\\ufffd\\ufffd(utf8 \xc3\xbc\"");

  AuditEvent e;
  e.event = "bypass";
  e.user_agent = "UA\n{\"event\":\"forged\"}";
  out.clear();
  append_audit_json(out, e, at_ms(0));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(out.back(), '\n');
}

TEST(Audit, FileSinkAppendsAndReopens) {
  char tmpl[] = "/tmp/authbypass-audit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/audit.log";
  AuditLog log;
  std::string err;
  ASSERT_TRUE(log.open_file(path, &err)) << err;
  EXPECT_TRUE(log.write("one\n"));
  std::string rotated = path + ".1";
  ASSERT_EQ(std::rename(path.c_str(), rotated.c_str()), 0);  // what logrotate does
  EXPECT_TRUE(log.write("two\n"));                           // still the old file
  ASSERT_TRUE(log.reopen(&err)) << err;
  EXPECT_TRUE(log.write("three\n"));
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  EXPECT_EQ(slurp(rotated), "one\ntwo\n");
  EXPECT_EQ(slurp(path), "three\n");
  std::remove(rotated.c_str());
  std::remove(path.c_str());
  rmdir(tmpl);
  AuditLog bad;
  EXPECT_FALSE(bad.open_file("/nonexistent-dir/audit.log", &err));
  EXPECT_NE(err.find("cannot open audit log /nonexistent-dir/audit.log"), std::string::npos);
}

// An ICAP outcome event carries the request, the policy and every outcome fact it is given.
TEST(Audit, IcapEventCarriesTheOutcome) {
  const AuditRequest req{"10.0.0.1", "GET", "http://crl.example.com/a.crl", "crl.example.com",
                         "ua"};
  const AuditOutcome o{"crl", "pki",         "CHG-1", 200, "application/pkix-crl",
                       1234,  "genuine crl", "why"};
  const AuditEvent e = icap_event("verified", "abc", req, o);
  EXPECT_EQ(e.component, "icap");
  EXPECT_EQ(e.event, "verified");
  EXPECT_EQ(e.policy_sha256, "abc");
  EXPECT_EQ(e.rule, "crl");
  EXPECT_EQ(e.owner, "pki");
  EXPECT_EQ(e.ticket, "CHG-1");
  EXPECT_EQ(e.src, "10.0.0.1");
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.url, "http://crl.example.com/a.crl");
  EXPECT_EQ(e.host, "crl.example.com");
  EXPECT_EQ(e.user_agent, "ua");
  EXPECT_EQ(e.status, 200);
  EXPECT_EQ(e.content_type, "application/pkix-crl");
  EXPECT_EQ(e.bytes, 1234);
  EXPECT_EQ(e.verdict, "genuine crl");
  EXPECT_EQ(e.reason, "why");
  EXPECT_TRUE(e.fixed_json.empty());
  EXPECT_TRUE(e.request_json.empty());
}

// Both adapters' policy events come from policy_event().
TEST(Audit, PolicyEvents) {
  std::string buf;
  const std::vector<std::string> errors = {"p.yaml:3:5: bad host", "p.yaml:9:1: no rules"};
  AuditEvent rejected = policy_event("icap", false, "/etc/p.yaml", "abc", errors, buf);
  std::string line;
  append_audit_json(line, rejected, at_ms(0));
  EXPECT_EQ(line,
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"component\":\"icap\",\"event\":"
            "\"policy_rejected\",\"policy_sha256\":\"abc\",\"file\":\"/etc/p.yaml\",\"reason\":"
            "\"p.yaml:3:5: bad host; p.yaml:9:1: no rules\"}\n");
  AuditEvent loaded = policy_event("helper", true, "/etc/p.yaml", "def", {}, buf);
  line.clear();
  append_audit_json(line, loaded, at_ms(0));
  EXPECT_EQ(line,
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"component\":\"helper\",\"event\":"
            "\"policy_loaded\",\"policy_sha256\":\"def\",\"file\":\"/etc/p.yaml\"}\n");
  // No valid policy at all: no hash.
  AuditEvent none = policy_event("helper", false, "/etc/p.yaml", "", errors, buf);
  EXPECT_TRUE(none.policy_sha256.empty());
  EXPECT_EQ(none.reason, "p.yaml:3:5: bad host; p.yaml:9:1: no rules");
}

}  // namespace
}  // namespace authbypass
