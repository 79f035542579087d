// Stats snapshots (stats.h): format_stats / parse_stats round trips for both adapters, the
// helper's format of earlier releases, and bad input (truncated, huge, wrong types), which
// is refused with an error and never crashes.
#include "authbypass/stats.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace authbypass {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

const system_clock::time_point kTs{milliseconds(1'796'155'426'683)};  // 2026-12-01T20:03:46.683Z

StatsSnapshot helper_snapshot() {
  StatsSnapshot s;
  s.pid = 4242;
  s.ts = kTs;
  s.policy_sha256 = std::string(64, 'a');
  s.policy_file = "/etc/authbypass/\"odd\"\npolicy.yaml";
  for (std::size_t i = 0; i < kHelperCounterCount; ++i) s.helper[i] = 1000 + i;
  s[HelperCounter::kRefusedUnaudited] = UINT64_MAX;
  s.rules["ca-crl"] = {7, 0};
  s.rules["shadow \"rule\" \xE2\x80\xA8"] = {0, 3};
  return s;
}

void expect_same(const StatsSnapshot& a, const StatsSnapshot& b) {
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.ts, b.ts);
  EXPECT_EQ(a.policy_sha256, b.policy_sha256);
  EXPECT_EQ(a.policy_file, b.policy_file);
  EXPECT_EQ(a.helper, b.helper);
  EXPECT_EQ(a.icap, b.icap);
  ASSERT_EQ(a.rules.size(), b.rules.size());
  for (auto i = a.rules.begin(), j = b.rules.begin(); i != a.rules.end(); ++i, ++j) {
    EXPECT_EQ(i->first, j->first);
    EXPECT_EQ(i->second.bypass, j->second.bypass);
    EXPECT_EQ(i->second.shadow, j->second.shadow);
  }
}

TEST(Stats, HelperRoundTrip) {
  const StatsSnapshot s = helper_snapshot();
  const std::string line = format_stats(s);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  std::string err;
  auto back = parse_stats(line, &err);
  ASSERT_TRUE(back) << err << "\n" << line;
  expect_same(s, *back);
  EXPECT_EQ(format_stats(*back), line);
}

TEST(Stats, IcapRoundTrip) {
  StatsSnapshot s;
  s.source = StatsSource::kIcap;
  s.pid = 77;
  s.ts = kTs;
  s.policy_file = "/etc/authbypass/policy.yaml";
  for (std::size_t i = 0; i < icap::kCounterCount; ++i) s.icap[i] = 10 * i + 1;
  const std::string line = format_stats(s);
  EXPECT_EQ(line.rfind("{\"stats\":\"srv_authbypass\",\"pid\":77,", 0), 0u) << line;
  EXPECT_NE(line.find("\"verified_crl\":1,"), std::string::npos) << line;
  EXPECT_NE(line.find("\"blocked\":71,"), std::string::npos) << line;
  EXPECT_EQ(line.find("\"bypass\""), std::string::npos) << "no helper counter: " << line;
  std::string err;
  auto back = parse_stats(line, &err);
  ASSERT_TRUE(back) << err;
  expect_same(s, *back);
}

// The helper's stats file of earlier releases: read, and written again byte for byte.
TEST(Stats, HelperFormatOfEarlierReleases) {
  const std::string old =
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":31337,\"ts\":\"2026-12-01T20:03:46.683Z\","
      "\"policy_sha256\":\"" +
      std::string(64, 'f') +
      "\",\"policy_file\":\"/etc/authbypass/policy.yaml\",\"lines\":12,\"bypass\":10,"
      "\"authenticate\":1,\"bad_lines\":1,\"malformed_requests\":0,\"internal_errors\":0,"
      "\"reloads\":2,\"reloads_rejected\":1,\"regex_faults\":0,\"audit_errors\":0,"
      "\"refused_unaudited\":0,\"rules\":{\"ca\":{\"bypass\":10,\"shadow\":4}}}\n";
  std::string err;
  auto s = parse_stats(old, &err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->source, StatsSource::kHelper);
  EXPECT_EQ(s->pid, 31337);
  EXPECT_EQ(s->ts, kTs);
  EXPECT_EQ((*s)[HelperCounter::kLines], 12u);
  EXPECT_EQ((*s)[HelperCounter::kBypass], 10u);
  EXPECT_EQ((*s)[HelperCounter::kReloadsRejected], 1u);
  EXPECT_EQ(s->rules.at("ca").shadow, 4u);
  EXPECT_EQ(format_stats(*s), old);

  // An older, shorter one (no policy fields, fewer counters) and unknown keys of a later one.
  auto short_one = parse_stats(
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"2026-12-01T20:03:46.683Z\","
      "\"lines\":3,\"future_counter\":9,\"future_text\":\"x\",\"rules\":{\"ca\":{\"bypass\":1,"
      "\"shadow\":0}}}",
      &err);
  ASSERT_TRUE(short_one) << err;
  EXPECT_EQ((*short_one)[HelperCounter::kLines], 3u);
  EXPECT_EQ(short_one->rules.at("ca").bypass, 1u);
}

TEST(Stats, BadInputIsRefusedWithAReason) {
  const std::string good = format_stats(helper_snapshot());
  const std::string head =
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"2026-12-01T20:03:46.683Z\"";
  const std::string icap_head =
      "{\"stats\":\"srv_authbypass\",\"pid\":1,\"ts\":\"2026-12-01T20:03:46.683Z\"";
  const char* bad[] = {
      "",
      "{}",
      "[]",
      "not json",
      "{\"stats\":\"other_adapter\",\"pid\":1,\"ts\":\"2026-12-01T20:03:46.683Z\"}",
      "{\"pid\":1,\"stats\":\"ext_authbypass_acl\",\"ts\":\"2026-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"ts\":\"2026-12-01T20:03:46.683Z\"}",  // no pid
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1}",                            // no ts
      "{\"stats\":1,\"pid\":1,\"ts\":\"2026-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":\"1\",\"ts\":\"2026-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":0,\"ts\":\"2026-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":-5,\"ts\":\"2026-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":99999999999,\"ts\":\"2026-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":1796155426683}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"2026-12-01\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"2026-13-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"2026-02-30T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"2026-12-01T23:59:60.000Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"0000-01-01T00:00:00.000Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"0107-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"9999-12-01T20:03:46.683Z\"}",
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"ts\":\"2026-12-01T20:03:46.683+01:00\"}",
  };
  for (const char* line : bad) {
    std::string err;
    EXPECT_FALSE(parse_stats(line, &err)) << line;
    EXPECT_FALSE(err.empty()) << line;
  }
  const std::string bad_tails[] = {
      ",\"bypass\":-1}",
      ",\"bypass\":1.5}",
      ",\"bypass\":1e3}",
      ",\"bypass\":\"3\"}",
      ",\"bypass\":true}",
      ",\"bypass\":null}",
      ",\"bypass\":18446744073709551616}",  // 2^64
      ",\"bypass\":99999999999999999999999999}",
      ",\"bypass\":1,\"bypass\":2}",  // repeated
      ",\"pid\":2}",
      ",\"policy_sha256\":5}",
      ",\"policy_file\":\"/etc/\xED\"}",  // not UTF-8
      ",\"rules\":{\"\xC0\xAF\":{}}}",    // an overlong form
      ",\"policy_file\":[\"x\"]}",
      ",\"rules\":[]}",
      ",\"rules\":{\"ca\":5}}",
      ",\"rules\":{\"ca\":{\"bypass\":\"1\"}}}",
      ",\"rules\":{\"ca\":{\"bypass\":1,\"bypass\":1}}}",
      ",\"rules\":{\"ca\":{},\"ca\":{}}}",
      ",\"rules\":{\"\":{}}}",
      ",\"future\":{\"nested\":1}}",
      ",\"future\":[1]}",
      ",\"rules\":{}}}",
      ",\"rules\":{}} trailing",
      ",\"rules\":{}}{}",
  };
  for (const std::string& tail : bad_tails) {
    std::string err;
    EXPECT_FALSE(parse_stats(head + tail, &err)) << tail;
    EXPECT_FALSE(err.empty()) << tail;
  }
  // The ICAP service has no helper counter, so a helper key is an unknown one there, and
  // an ICAP counter of the wrong type is refused as well.
  EXPECT_TRUE(parse_stats(icap_head + ",\"bypass\":1}"));
  EXPECT_FALSE(parse_stats(icap_head + ",\"blocked\":\"1\"}"));
  // Largest values.
  auto max = parse_stats(head + ",\"bypass\":18446744073709551615}");
  ASSERT_TRUE(max);
  EXPECT_EQ((*max)[HelperCounter::kBypass], UINT64_MAX);
  // Every truncation of a good line is refused (and does not crash).
  for (std::size_t n = 0; n + 1 < good.size(); ++n) {
    EXPECT_FALSE(parse_stats(std::string_view(good).substr(0, n))) << n;
  }
}

TEST(Stats, HugeInputIsRefusedWithoutGrowing) {
  std::string err;
  std::string huge = "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"policy_file\":\"";
  huge.append(kMaxStatsLine, 'x');
  huge += "\"}";
  EXPECT_FALSE(parse_stats(huge, &err));
  EXPECT_NE(err.find("too long"), std::string::npos) << err;

  std::string long_string = "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,\"policy_file\":\"" +
                            std::string(kMaxStatsString + 1, 'x') + "\"}";
  EXPECT_FALSE(parse_stats(long_string, &err));
  EXPECT_NE(err.find("too long"), std::string::npos) << err;

  std::string many =
      "{\"stats\":\"ext_authbypass_acl\",\"pid\":1,"
      "\"ts\":\"2026-12-01T20:03:46.683Z\",\"rules\":{";
  for (std::size_t i = 0; i <= kMaxStatsRules; ++i) {
    if (i) many += ',';
    many += "\"r" + std::to_string(i) + "\":{}";
  }
  many += "}}";
  ASSERT_LT(many.size(), kMaxStatsLine);
  EXPECT_FALSE(parse_stats(many, &err));
  EXPECT_NE(err.find("too many rules"), std::string::npos) << err;
}

TEST(Stats, WriteStatsFileNamesItByPid) {
  char dir[] = "/tmp/stats_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  StatsSnapshot s = helper_snapshot();
  std::string err;
  ASSERT_TRUE(write_stats_file(std::string(dir) + "/helper-%p.json", s, &err)) << err;
  const std::string path = std::string(dir) + "/helper-4242.json";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), format_stats(s));
  EXPECT_FALSE(write_stats_file(std::string(dir) + "/no/such/dir/%p.json", s, &err));
  EXPECT_FALSE(err.empty());
  std::remove(path.c_str());
  rmdir(dir);
}

// The writer's rules both adapters follow: a changed snapshot at most once a second (the
// first at once), a forced one always; a failed write reported on the first failure and on
// the first after a success, never twice in a row.
TEST(Stats, StatsFileWriterRateAndWarnings) {
  using Clock = StatsFileWriter::Clock;
  using std::chrono::milliseconds;
  char dir[] = "/tmp/stats_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string sub = std::string(dir) + "/sub";
  StatsFileWriter off;
  EXPECT_FALSE(off.due(true, true, Clock::now()));

  StatsFileWriter w(sub + "/s-%p.json");
  const Clock::time_point t0 = Clock::now();
  EXPECT_TRUE(w.due(true, false, t0));
  EXPECT_FALSE(w.due(false, false, t0));
  EXPECT_EQ(w.due_in(t0), milliseconds(0));
  StatsSnapshot s = StatsFileWriter::header(StatsSource::kIcap, "ab", "/p.yaml");
  EXPECT_EQ(s.pid, ::getpid());
  EXPECT_EQ(s.source, StatsSource::kIcap);
  EXPECT_EQ(s.policy_sha256, "ab");
  EXPECT_EQ(s.policy_file, "/p.yaml");

  // sub/ does not exist: the first failure is reported, the next one not.
  auto said = w.write(s, t0);
  ASSERT_TRUE(said);
  EXPECT_NE(said->find("cannot write the stats file: "), std::string::npos) << *said;
  EXPECT_TRUE(w.written());
  EXPECT_FALSE(w.due(true, false, t0 + milliseconds(999)));
  EXPECT_EQ(w.due_in(t0 + milliseconds(400)), milliseconds(600));
  EXPECT_TRUE(w.due(false, true, t0 + milliseconds(1)));
  EXPECT_TRUE(w.due(true, false, t0 + milliseconds(1000)));
  EXPECT_FALSE(w.write(s, t0 + milliseconds(1000)));

  // It works: nothing to say; it fails again: said again, once.
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  EXPECT_FALSE(w.write(s, t0 + milliseconds(2000)));
  const std::string path = sub + "/s-" + std::to_string(::getpid()) + ".json";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), format_stats(s));
  ASSERT_EQ(std::remove(path.c_str()), 0);
  ASSERT_EQ(rmdir(sub.c_str()), 0);
  EXPECT_TRUE(w.write(s, t0 + milliseconds(3000)));
  EXPECT_FALSE(w.write(s, t0 + milliseconds(4000)));
  rmdir(dir);
}

TEST(Stats, CountersAreDeclaredOnce) {
  EXPECT_EQ(kHelperCounterCount, 11u);
  EXPECT_EQ(counter_key(HelperCounter::kLines), "lines");
  EXPECT_EQ(counter_key(HelperCounter::kRefusedUnaudited), "refused_unaudited");
  EXPECT_EQ(counter_key(icap::Counter::kVerifiedOcspRequest), "verified_ocsp_request");
  EXPECT_EQ(icap::counter_label(icap::Counter::kVerifiedOcspRequest), "verified ocsp-request");
  EXPECT_EQ(stats_marker(StatsSource::kIcap), "srv_authbypass");
}

}  // namespace
}  // namespace authbypass
