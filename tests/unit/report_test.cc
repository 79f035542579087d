// `authbypass report`: counting real audit lines (made with append_audit_json, as the
// helper and ICAP service write them), Squid access-log lines, gzip, bad lines.
#include "authbypass/report.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "authbypass/audit.h"
#include "authbypass/stats.h"

namespace authbypass {
namespace {

const std::int64_t kT0 = *parse_time_ms("2026-11-02T10:00:00Z");

std::string event(std::string_view ev, std::string_view rule, std::string_view src,
                  std::string_view url, std::int64_t ts_ms, std::string_view ua = "",
                  std::string_view reason = "", std::string_view component = "helper") {
  AuditEvent e;
  e.component = component;
  e.event = ev;
  e.rule = rule;
  e.owner = "secops@example.com";
  e.ticket = "SEC-1";
  e.src = src;
  e.method = "GET";
  e.url = url;
  e.user_agent = ua;
  e.reason = reason;
  std::string out;
  append_audit_json(out, e,
                    std::chrono::system_clock::time_point(std::chrono::milliseconds(ts_ms)));
  out.pop_back();  // the LF
  return out;
}

std::shared_ptr<const Policy> policy() {
  auto r = load_policy_text(
      "version: 1\nrules:\n"
      "  - id: ca\n    match: {hosts: [.verisign.com]}\n"
      "  - id: crl\n    match: {path_suffix: [.crl]}\n"
      "  - id: old\n    expires: 2026-11-20\n    match: {hosts: [old.test]}\n",
      "p.yaml");
  EXPECT_TRUE(r.ok());
  return r.policy;
}

TEST(ParseTime, Rfc3339AndDates) {
  EXPECT_EQ(parse_time_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_time_ms("1970-01-01T00:00:01.5Z"), 1500);
  EXPECT_EQ(parse_time_ms("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(parse_time_ms("1970-01-02"), 86'400'000);
  EXPECT_EQ(parse_time_ms("2026-11-18T11:06:40.123Z"), 1795000000123);
  EXPECT_FALSE(parse_time_ms("2026-13-01"));
  EXPECT_FALSE(parse_time_ms("2026-11-18T11:06:40"));  // no zone: ambiguous
  EXPECT_FALSE(parse_time_ms("yesterday"));
}

TEST(Report, CountsRulesClientsHostsAndAnomalies) {
  ReportOptions o;
  o.policy = policy();
  o.today = *parse_date("2026-11-05");
  o.burst_per_minute = 5;
  ReportBuilder r(o);
  for (int i = 0; i < 3; ++i)
    r.add_line(event("bypass", "ca", "10.0.0.1", "http://crl.verisign.com/a.crl", kT0 + i));
  r.add_line(event("bypass", "crl", "10.0.0.2", "http://evil.test/x.crl", kT0 + 10,
                   "Microsoft-CryptoAPI/10.0"));
  r.add_line(event("blocked", "crl", "10.0.0.2", "http://evil.test/x.crl", kT0 + 11, "", "HTML/XML",
                   "icap"));
  r.add_line(event("verified", "ca", "10.0.0.1", "http://crl.verisign.com/a.crl", kT0 + 12, "", "",
                   "icap"));
  r.add_line(event("shadow", "ca", "10.0.0.3", "http://www.verisign.com/x", kT0 + 13));
  for (int i = 0; i < 7; ++i)  // a burst: 7 > 5 within one minute
    r.add_line(event("bypass", "crl", "10.9.9.9", "http://b.test/x.crl", kT0 + 20'000 + i));
  // A forged line cannot come from a client (the audit writer escapes), and junk is counted.
  r.add_line(event("bypass", "crl", "10.0.0.4", "http://e.test/x.crl", kT0 + 30,
                   "UA\n{\"ts\":\"2026-11-02T10:00:00Z\",\"event\":\"bypass\",\"rule\":\"ca\"}"));
  r.add_line("not json at all");
  r.add_line("{\"ts\":\"2026-11-02T10:00:00Z\"}");  // no event
  r.add_line("{\"ts\":\"bad\",\"event\":\"bypass\"}");
  r.add_line("");

  EXPECT_EQ(r.lines(), 19u);
  EXPECT_EQ(r.malformed(), 3u);
  const std::string t = r.text();
  EXPECT_NE(t.find("time range: 2026-11-02T10:00:00.000Z .. 2026-11-02T10:00:20.006Z"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("  helper/bypass       12\n"), std::string::npos) << t;
  EXPECT_NE(t.find("HTML/XML"), std::string::npos);
  EXPECT_NE(t.find("ca www.verisign.com"), std::string::npos) << t;  // the shadow hit
  // Rules never hit and expiring: `old` both.
  auto never = t.substr(t.find("Rules never hit"));
  EXPECT_NE(never.find("  old "), std::string::npos) << never;
  EXPECT_NE(t.find("old   2026-11-20"), std::string::npos) << t;
  // CryptoAPI UA to evil.test: outside every CA rule.
  auto anomalies = t.substr(t.find("Anomalies"));
  EXPECT_NE(anomalies.find("evil.test"), std::string::npos) << anomalies;
  EXPECT_NE(anomalies.find("10.9.9.9"), std::string::npos) << anomalies;  // the burst

  const std::string j = r.json();
  EXPECT_NE(
      j.find("\"rules\":[{\"rule\":\"crl\",\"owner\":\"secops@example.com\",\"ticket\":\"SEC-1\","
             "\"helper\":9,\"squid\":0,\"verified\":0,\"blocked\":1,\"shadow\":0}"),
      std::string::npos)
      << j;
  EXPECT_NE(j.find("\"never_hit\":[\"old\"]"), std::string::npos) << j;
  EXPECT_NE(j.find("\"bursts\":[{\"client\":\"10.9.9.9\""), std::string::npos) << j;
  const std::string c = r.csv();
  EXPECT_NE(c.find("rule,ca,5,secops@example.com,SEC-1,3,0,1,0,1\n"), std::string::npos) << c;
}

TEST(Report, TablesKeepAtMostMaxKeysAndCountTheRestAsOther) {
  ReportOptions o;
  o.top = 3;
  ReportBuilder r(o);
  constexpr std::size_t kExtra = 7;
  const std::size_t n = ReportBuilder::kMaxKeys + kExtra;
  for (std::size_t i = 0; i < n; ++i) {  // every client once, one client many times
    const std::string src = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) +
                            "." + std::to_string(i & 255);
    r.add_line(event("bypass", "ca", src, "http://crl.verisign.com/a.crl", kT0 + 1));
    if (i % 1000 == 0)
      r.add_line(event("bypass", "ca", "192.0.2.1", "http://crl.verisign.com/a.crl", kT0 + 1));
  }
  const std::string j = r.json();
  // The first kMaxKeys distinct clients (192.0.2.1, the most frequent, among them) have
  // their own rows; the events of the kExtra + 1 that came later count under "(other)".
  EXPECT_NE(j.find("\"192.0.2.1\":" + std::to_string((n + 999) / 1000)), std::string::npos) << j;
  EXPECT_NE(j.find("\"(other)\":" + std::to_string(kExtra + 1)), std::string::npos) << j;
  const std::string t = r.text();
  EXPECT_NE(t.find("(other)"), std::string::npos);
}

TEST(Report, SinceUntilAndHours) {
  ReportOptions o;
  o.since_ms = kT0 + 1000;
  o.until_ms = kT0 + 3000;
  o.hours = std::pair{0, 0 + 1};  // only 00:00-01:00 local counts as working hours
  ReportBuilder r(o);
  for (int i = 0; i < 5; ++i)
    r.add_line(event("bypass", "ca", "10.0.0.1", "http://crl.verisign.com/a.crl", kT0 + i * 1000));
  const std::string j = r.json();
  EXPECT_NE(j.find("\"outside_range\":3"), std::string::npos) << j;
  EXPECT_NE(j.find("\"helper/bypass\":2"), std::string::npos) << j;
}

TEST(Report, SquidAccessLogLinesWithEa) {
  ReportBuilder r(ReportOptions{});
  r.add_line(
      "1762077600.123    5 10.1.2.3 TCP_MISS/200 1234 GET http://crl.verisign.com/pca3.crl - "
      "FIRSTUP_PARENT/127.0.0.1 application/pkix-crl ea=ca et=authbypass/ca");
  r.add_line(
      "1762077601.000    1 10.1.2.3 TCP_DENIED/407 3900 GET http://www.example.com/ - "
      "HIER_NONE/- text/html ea=- et=-");
  EXPECT_EQ(r.malformed(), 0u);
  const std::string j = r.json();
  EXPECT_NE(j.find("\"squid/bypass\":1"), std::string::npos) << j;
  EXPECT_NE(j.find("\"squid/access\":1"), std::string::npos) << j;
  EXPECT_NE(j.find("\"hosts\":{\"crl.verisign.com\":1}"), std::string::npos) << j;
  EXPECT_NE(j.find("\"first\":\"2025-11-02T10:00:00.123Z\""), std::string::npos) << j;
}

// Found by fuzz_report (a 1-minute trial of tests/fuzz/run_long.sh): a status of 20 digits
// after the '/' overflowed a signed 64-bit accumulator (UB). Such a line is still an access
// event; its status is unknown. Regression input: tests/fuzz/corpus/fuzz_report/status-overflow.
TEST(Report, SquidAccessLineWithAHugeStatusIsReadWithoutOverflow) {
  ReportBuilder r(ReportOptions{});
  r.add_line("1 1 3 /25294644908216581234 T b ea=");
  r.add_line(
      "1762077600.123    5 10.1.2.3 TCP_MISS/99999999999999999999999999 1234 GET "
      "http://crl.verisign.com/pca3.crl - FIRSTUP_PARENT/127.0.0.1 application/pkix-crl ea=ca "
      "et=authbypass/ca");
  EXPECT_EQ(r.malformed(), 0u);
  const std::string j = r.json();
  EXPECT_NE(j.find("\"squid/bypass\":1"), std::string::npos) << j;
  EXPECT_NE(j.find("\"squid/access\":1"), std::string::npos) << j;
}

// Found by fuzz_report (30-minute run, after 9 min): the decode buffers of one JSON line lived in a
// vector that grew while earlier fields still pointed into it; short (in-place) strings
// moved and the views dangled (heap-use-after-free under ASan, garbage or a crash without).
// Every field here has an escape and is short; the first line of a fresh builder is the
// case that grew the vector. Regression input: tests/fuzz/corpus/fuzz_report/uaf-escaped-field.
TEST(Report, EscapedShortFieldsOfOneJsonLineStayValid) {
  ReportBuilder r(ReportOptions{});
  r.add_line(R"({"ts":"2026-11-02T10:00:00Z","event":"\\","url":""})");
  r.add_line(R"({"ts":"2026-11-02T10:00:01Z","component":"h\u0065lper","event":"b\u0079pass",)"
             R"("rule":"c\u0061","owner":"o\u0031","ticket":"T\u002d1","src":"10.0.0.\u0031",)"
             R"("host":"a.verisign.co\u006d","url":"http:\/\/a.verisign.com\/x.crl",)"
             R"("user_agent":"U\u0041","reason":"r\u0031","verdict":"v\u0031"})");
  EXPECT_EQ(r.malformed(), 0u);
  const std::string j = r.json();
  EXPECT_NE(j.find("\"helper/bypass\":1"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("?/\\":1)"), std::string::npos) << j;  // no component, event "\"
  EXPECT_NE(j.find("\"rule\":\"ca\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"a.verisign.com\":1"), std::string::npos) << j;
  EXPECT_NE(j.find("\"10.0.0.1\":1"), std::string::npos) << j;
}

TEST(Report, ReadsPlainAndGzipFilesAndSurvivesHugeLines) {
  char tmpl[] = "/tmp/authbypass-report-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::string body;
  for (int i = 0; i < 1000; ++i)
    body += event("bypass", "ca", "10.0.0.1", "http://crl.verisign.com/a.crl", kT0 + i) + "\n";
  body += std::string(3 << 20, 'x') + "\n";  // a 3 MB line: malformed, not fatal
  body += event("bypass", "ca", "10.0.0.1", "http://crl.verisign.com/a.crl", kT0) + "\n";
  { std::ofstream(dir + "/audit.log") << body; }
  gzFile gz = gzopen((dir + "/audit.log.1.gz").c_str(), "wb");
  gzwrite(gz, body.data(), static_cast<unsigned>(body.size()));
  gzclose(gz);
  ReportBuilder r(ReportOptions{});
  std::string err;
  EXPECT_TRUE(r.add_file(dir + "/audit.log", &err)) << err;
  EXPECT_TRUE(r.add_file(dir + "/audit.log.1.gz", &err)) << err;
  EXPECT_FALSE(r.add_file(dir + "/missing.log", &err));
  EXPECT_NE(err.find("missing.log: cannot open"), std::string::npos) << err;
  EXPECT_EQ(r.malformed(), 2u);
  EXPECT_NE(r.json().find("\"helper/bypass\":2002"), std::string::npos);
  std::remove((dir + "/audit.log").c_str());
  std::remove((dir + "/audit.log.1.gz").c_str());
  rmdir(tmpl);
}

// Stats files of both adapters (stats.h): the latest snapshot of each process, summed per
// adapter; the ICAP counters beside the helper's (text and JSON); a bad snapshot is
// counted as malformed and changes nothing.
TEST(Report, ReadsHelperAndIcapStatsFiles) {
  auto snapshot = [](StatsSource source, std::int64_t pid, std::int64_t ts_ms, std::uint64_t n) {
    StatsSnapshot s;
    s.source = source;
    s.pid = pid;
    s.ts = std::chrono::system_clock::time_point(std::chrono::milliseconds(ts_ms));
    s.policy_sha256 = std::string(64, 'b');
    if (source == StatsSource::kHelper) {
      s[HelperCounter::kBypass] = n;
      s.rules["ca"] = {n, 1};
    } else {
      s[icap::Counter::kVerifiedCrl] = n;
      s[icap::Counter::kBlocked] = 2 * n;
    }
    std::string line = format_stats(s);
    line.pop_back();
    return line;
  };
  ReportBuilder r(ReportOptions{});
  r.add_line(snapshot(StatsSource::kHelper, 10, kT0, 5));
  r.add_line(snapshot(StatsSource::kIcap, 20, kT0 + 2000, 7));
  r.add_line(snapshot(StatsSource::kIcap, 20, kT0 + 1000, 1));  // older: ignored
  r.add_line(snapshot(StatsSource::kIcap, 21, kT0, 3));
  r.add_line(snapshot(StatsSource::kIcap, 10, kT0, 100));  // same PID as the helper's
  r.add_line(
      "{\"stats\":\"srv_authbypass\",\"pid\":22,\"ts\":\"2026-11-02T10:00:00.000Z\","
      "\"verified_crl\":\"9\"}");                                                    // wrong type
  r.add_line("{\"stats\":\"srv_authbypass\",\"pid\":23,\"ts\":\"2026-11-02T10:00");  // cut
  EXPECT_EQ(r.malformed(), 2u);
  const std::string text = r.text();
  const auto icap_at = text.find("ICAP counters (3 process(es), latest snapshot each, summed)");
  ASSERT_NE(icap_at, std::string::npos) << text;
  EXPECT_NE(text.find("Helper counters (1 process(es)"), std::string::npos) << text;
  const std::string icap_part = text.substr(icap_at);
  // A table row "name   value" (columns padded with spaces).
  auto has_row = [&](std::string_view name, std::string_view value) {
    std::istringstream lines(icap_part);
    for (std::string l; std::getline(lines, l);) {
      std::istringstream words(l);
      std::string a, b, rest;
      if (words >> a >> b && !(words >> rest) && a == name && b == value) return true;
    }
    return false;
  };
  EXPECT_TRUE(has_row("verified_crl", "110")) << icap_part;
  EXPECT_TRUE(has_row("blocked", "220")) << icap_part;
  EXPECT_TRUE(has_row("verified_ocsp", "0")) << icap_part;
  const std::string json = r.json();
  EXPECT_NE(json.find("\"icap_totals\":{\"processes\":3,\"verified_crl\":110,"), std::string::npos)
      << json;
  EXPECT_NE(json.find("\"blocked\":220,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"helper_totals\":{\"processes\":1,\"lines\":0,\"bypass\":5,"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"rules\":{\"ca\":{\"bypass\":5,\"shadow\":1}}"), std::string::npos) << json;
}

}  // namespace
}  // namespace authbypass
