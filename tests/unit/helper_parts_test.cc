// The Squid helper's parts: line framing, answers (and withdrawing bypasses), stats, and
// the audit batch it records events in.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "authbypass/audit.h"
#include "authbypass/audit_batch.h"
#include "authbypass/policy.h"
#include "batch_writer.h"
#include "helper_answers.h"
#include "helper_stats.h"
#include "line_framer.h"

namespace authbypass {
namespace {

std::shared_ptr<const Policy> TwoRules() {
  LoadResult r = load_policy_text(
      "version: 1\nrules:\n"
      "  - id: crl\n    owner: pki\n    ticket: T-1\n    match: {hosts: [a.test]}\n"
      "  - id: watch\n    mode: shadow\n    match: {hosts: [a.test]}\n",
      "p.yaml");
  EXPECT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  return r.policy;
}

Decision DecideOn(const Policy& p, const char* url, const char* ua = "UA \"1\"") {
  Request req;
  EXPECT_TRUE(req.parse({"GET", url, ua, "192.0.2.1"}));
  return p.decide(req, today_utc());
}

// Every split of the input into chunks gives the same lines; an over-long line is
// reported once with its first bytes, and the lines around it are intact.
TEST(HelperLineFramer, LinesWhateverTheChunks) {
  const std::string long_line = "7 " + std::string(squid::kMaxLineBytes + 10, 'x');
  const std::string input = "1 a\n2 bb\n" + long_line + "\n3 ccc\n4 last";
  for (std::size_t chunk = 1; chunk <= input.size(); chunk += chunk < 16 ? 1 : 997) {
    helper::LineFramer f;
    std::vector<std::string> got;
    auto line = [&](std::string_view l) { got.emplace_back(l); };
    auto too_long = [&](std::string_view prefix) {
      EXPECT_EQ(prefix.size(), helper::LineFramer::kKeptPrefix);
      got.push_back("TOO LONG " + std::string(prefix.substr(0, 2)));
    };
    for (std::size_t at = 0; at < input.size(); at += chunk)
      f.consume(std::string_view(input).substr(at, chunk), line, too_long);
    f.finish(line, too_long);
    EXPECT_EQ(got, (std::vector<std::string>{"1 a", "2 bb", "TOO LONG 7 ", "3 ccc", "4 last"}))
        << "chunk " << chunk;
  }
}

// Withdrawing turns exactly the OK answers into ERR, keeping their channel ids, and names
// each one's rule by index and policy generation.
TEST(HelperAnswers, WithdrawTurnsOnlyBypassesIntoErr) {
  auto p = TwoRules();
  const Decision bypass = DecideOn(*p, "http://a.test/x");
  const Decision none = DecideOn(*p, "http://b.test/x");
  ASSERT_TRUE(bypass.bypass());
  helper::Answers a;
  a.decision("0", bypass, p->generation());
  a.error("1", "bad line: OK log=crl");  // text that looks like an answer is not one
  a.decision("2", none, p->generation());
  a.decision("", bypass, p->generation());
  a.broken("3", "internal error");
  EXPECT_EQ(a.text(),
            "0 OK log=crl tag=authbypass/crl\n1 ERR message=\"bad line: OK log=crl\"\n2 ERR\n"
            "OK log=crl tag=authbypass/crl\n3 BH message=\"internal error\"\n");
  std::vector<helper::WithdrawnBypass> out;
  a.withdraw_bypasses("audit log unwritable", out);
  EXPECT_EQ(a.text(),
            "0 ERR message=\"audit log unwritable\"\n1 ERR message=\"bad line: OK log=crl\"\n"
            "2 ERR\nERR message=\"audit log unwritable\"\n3 BH message=\"internal error\"\n");
  ASSERT_EQ(out.size(), 2u);
  for (const auto& w : out) {
    EXPECT_EQ(w.rule_index, 0u);
    EXPECT_EQ(w.policy, p->generation());
  }
  out.clear();
  a.withdraw_bypasses("again", out);  // nothing left to withdraw
  EXPECT_TRUE(out.empty());
}

// A withdrawn bypass counts as an authentication refused unaudited.
TEST(HelperStats, WithdrawnBypassIsNoBypass) {
  auto p = TwoRules();
  helper::Stats s("/nonexistent/stats.json");
  s.count(DecideOn(*p, "http://a.test/x"), p);
  s.count(DecideOn(*p, "http://b.test/x"), p);
  EXPECT_EQ(s.counters[HelperCounter::kBypass], 1u);
  EXPECT_EQ(s.counters[HelperCounter::kAuthenticate], 1u);
  s.withdrawn({0, p->generation()});
  EXPECT_EQ(s.counters[HelperCounter::kBypass], 0u);
  EXPECT_EQ(s.counters[HelperCounter::kAuthenticate], 2u);
  EXPECT_EQ(s.counters[HelperCounter::kRefusedUnaudited], 1u);
}

std::vector<std::string> g_said;
void Say(const std::string& m) {
  g_said.push_back(m);
}

std::optional<StatsSnapshot> ReadStats(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  return parse_stats(line);
}

// The stats file: written once a second at most while counts change, not at all while
// they do not, always when forced; a failed write said on the first failure and again on
// the first failure after a write that worked.
TEST(HelperStats, WriteIfDue) {
  using std::chrono::milliseconds;
  auto p = TwoRules();
  char dir[] = "/tmp/helper_parts_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string sub = std::string(dir) + "/sub";
  const std::string path = sub + "/h-" + std::to_string(::getpid()) + ".json";
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  g_said.clear();
  helper::Stats s(sub + "/h-%p.json");
  const auto t0 = StatsFileWriter::Clock::now();
  EXPECT_FALSE(s.write_due_in(t0));  // nothing counted: nothing pending
  s.write_if_due(false, p, p.get(), "p.yaml", Say, t0);
  EXPECT_FALSE(ReadStats(path));

  s.count(DecideOn(*p, "http://a.test/x"), p);
  EXPECT_EQ(s.write_due_in(t0), milliseconds(0));
  s.write_if_due(false, p, p.get(), "p.yaml", Say, t0);
  auto st = ReadStats(path);
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)[HelperCounter::kBypass], 1u);
  EXPECT_EQ((*st)[HelperCounter::kLines], 1u);
  EXPECT_EQ(st->policy_file, "p.yaml");
  EXPECT_EQ(st->policy_sha256, p->sha256());
  EXPECT_EQ(st->rules["crl"].bypass, 1u);
  EXPECT_EQ(st->rules["watch"].shadow, 1u);

  s.count(DecideOn(*p, "http://b.test/x"), p);
  EXPECT_EQ(s.write_due_in(t0 + milliseconds(300)), milliseconds(700));
  s.write_if_due(false, p, p.get(), "p.yaml", Say, t0 + milliseconds(999));
  EXPECT_EQ((*ReadStats(path))[HelperCounter::kAuthenticate], 0u);  // too soon
  s.write_if_due(false, p, p.get(), "p.yaml", Say, t0 + milliseconds(1000));
  EXPECT_EQ((*ReadStats(path))[HelperCounter::kAuthenticate], 1u);
  EXPECT_EQ((*ReadStats(path))[HelperCounter::kLines], 2u);

  // Unchanged: not rewritten after a second, only when forced.
  ASSERT_EQ(std::remove(path.c_str()), 0);
  s.write_if_due(false, p, p.get(), "p.yaml", Say, t0 + milliseconds(5000));
  EXPECT_FALSE(ReadStats(path));
  s.write_if_due(true, p, p.get(), "p.yaml", Say, t0 + milliseconds(5001));
  EXPECT_TRUE(ReadStats(path));
  EXPECT_TRUE(g_said.empty());

  // The directory goes: said once; it comes back: written; it goes again: said again.
  ASSERT_EQ(std::remove(path.c_str()), 0);
  ASSERT_EQ(rmdir(sub.c_str()), 0);
  s.write_if_due(true, p, p.get(), "p.yaml", Say, t0 + milliseconds(6000));
  s.write_if_due(true, p, p.get(), "p.yaml", Say, t0 + milliseconds(7000));
  EXPECT_EQ(g_said.size(), 1u);
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  s.write_if_due(true, p, p.get(), "p.yaml", Say, t0 + milliseconds(8000));
  EXPECT_TRUE(ReadStats(path));
  ASSERT_EQ(std::remove(path.c_str()), 0);
  ASSERT_EQ(rmdir(sub.c_str()), 0);
  s.write_if_due(true, p, p.get(), "p.yaml", Say, t0 + milliseconds(9000));
  ASSERT_EQ(g_said.size(), 2u);
  EXPECT_NE(g_said[1].find("cannot write the stats file"), std::string::npos) << g_said[1];
  rmdir(dir);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// fd 1 goes to a file while it lives (the writer thread writes the answers to fd 1).
class StdoutToFile {
 public:
  explicit StdoutToFile(const std::string& path) {
    std::fflush(stdout);
    saved_ = ::dup(1);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    ::dup2(fd, 1);
    ::close(fd);
  }
  ~StdoutToFile() {
    std::fflush(stdout);
    ::dup2(saved_, 1);
    ::close(saved_);
  }
  StdoutToFile(const StdoutToFile&) = delete;
  StdoutToFile& operator=(const StdoutToFile&) = delete;

 private:
  int saved_ = -1;
};

struct WriterCase {
  std::string dir, out, log;
  WriterCase() {
    char d[] = "/tmp/helper_parts_test.XXXXXX";
    EXPECT_NE(mkdtemp(d), nullptr);
    dir = d;
    out = dir + "/stdout";
    log = dir + "/audit.log";
  }
  ~WriterCase() {
    std::remove(out.c_str());
    std::remove(log.c_str());
    rmdir(dir.c_str());
  }
};

// The writer thread writes a batch's audit lines to the log, then its answers to fd 1,
// unchanged; hand_over() leaves the caller's batch empty; a drain with no batch in hand
// says so.
TEST(HelperBatchWriter, WritesAuditLinesThenAnswers) {
  auto p = TwoRules();
  WriterCase c;
  AuditLog log;
  std::string err;
  ASSERT_TRUE(log.open_file(c.log, &err)) << err;
  helper::Answers answers;
  answers.decision("0", DecideOn(*p, "http://a.test/x"), p->generation());
  answers.decision("1", DecideOn(*p, "http://b.test/x"), p->generation());
  const std::string expected(answers.text());
  AuditBatch audit;
  audit.add_line("{\"event\":\"one\"}\n");
  audit.add_line("{\"event\":\"two\"}\n");
  helper::BatchWriter::Done done;
  {
    StdoutToFile redirect(c.out);
    helper::BatchWriter w(log, true, "unaudited");
    ASSERT_TRUE(w.start());
    ASSERT_TRUE(w.drain(&done));
    EXPECT_FALSE(done.had_batch);
    w.hand_over(audit, answers);
    EXPECT_TRUE(audit.empty());
    EXPECT_TRUE(answers.empty());
    ASSERT_TRUE(w.drain(&done));
    EXPECT_FALSE(w.busy());
  }
  EXPECT_TRUE(done.had_batch);
  EXPECT_TRUE(done.audit_ok);
  EXPECT_TRUE(done.withdrawn.empty());
  EXPECT_EQ(ReadAll(c.log), "{\"event\":\"one\"}\n{\"event\":\"two\"}\n");
  EXPECT_EQ(ReadAll(c.out), expected);
}

// A failed audit write: with withdraw_unaudited every OK answer goes out as ERR and is
// listed; without it, the answers go out unchanged. Either way the failure and its errno
// are reported.
TEST(HelperBatchWriter, FailedAuditWriteWithdrawsBypasses) {
  auto p = TwoRules();
  for (bool withdraw : {true, false}) {
    WriterCase c;
    AuditLog log;
    std::string err;
    ASSERT_TRUE(log.open_file("/dev/full", &err)) << err;
    helper::Answers answers;
    answers.decision("0", DecideOn(*p, "http://a.test/x"), p->generation());
    answers.decision("1", DecideOn(*p, "http://b.test/x"), p->generation());
    const std::string as_decided(answers.text());
    AuditBatch audit;
    audit.add_line("{\"event\":\"bypass\"}\n");
    helper::BatchWriter::Done done;
    {
      StdoutToFile redirect(c.out);
      helper::BatchWriter w(log, withdraw, "unaudited");
      ASSERT_TRUE(w.start());
      w.hand_over(audit, answers);
      ASSERT_TRUE(w.drain(&done));
    }
    EXPECT_TRUE(done.had_batch);
    EXPECT_FALSE(done.audit_ok);
    EXPECT_EQ(done.audit_errno, ENOSPC);
    if (withdraw) {
      EXPECT_EQ(ReadAll(c.out), "0 ERR message=\"unaudited\"\n1 ERR\n");
      ASSERT_EQ(done.withdrawn.size(), 1u);
      EXPECT_EQ(done.withdrawn[0].rule_index, 0u);
      EXPECT_EQ(done.withdrawn[0].policy, p->generation());
    } else {
      EXPECT_EQ(ReadAll(c.out), as_decided);
      EXPECT_TRUE(done.withdrawn.empty());
    }
  }
}

// The batch function the main thread uses too: nothing to write is a success that writes
// nothing and withdraws nothing.
TEST(HelperBatchWriter, EmptyAuditBatchWritesNothing) {
  auto p = TwoRules();
  AuditLog log;
  std::string err;
  ASSERT_TRUE(log.open_file("/dev/full", &err)) << err;
  helper::Answers answers;
  answers.decision("0", DecideOn(*p, "http://a.test/x"), p->generation());
  const std::string as_decided(answers.text());
  AuditBatch audit;
  std::string text, scratch;
  const auto done =
      helper::write_audit_batch(log, audit, answers, true, "unaudited", text, scratch);
  EXPECT_TRUE(done.audit_ok);
  EXPECT_TRUE(done.withdrawn.empty());
  EXPECT_EQ(answers.text(), as_decided);
}

// audit_timestamp() is the "ts" an audit line gets.
TEST(AuditTimestamp, IsTheLinesTs) {
  using namespace std::chrono;
  const system_clock::time_point t = sys_days{2026y / 1 / 31} + 12h + 34min + 56s + 789ms;
  EXPECT_EQ(audit_timestamp(t), "2026-01-31T12:34:56.789Z");
  std::string line;
  AuditEvent e;
  e.event = "bypass";
  append_audit_json(line, e, t + 1ms);
  EXPECT_EQ(line.substr(0, 32), "{\"ts\":\"" + audit_timestamp(t + 1ms) + "\"");
}

// A batch's lines are the lines append_audit_json() makes of the same events, in order,
// each stamped with the time it was recorded with.
TEST(AuditBatch, FormatsAsAppendAuditJson) {
  using namespace std::chrono;
  auto p = TwoRules();
  const system_clock::time_point t1 = sys_days{2026y / 3 / 1} + 1s, t2 = t1 + 5ms;
  Request req;
  ASSERT_TRUE(req.parse({"GET", "http://a.test/\"x\"", "UA\n\"1\"", "192.0.2.1"}));
  const Decision d = p->decide(req, today_utc());
  ASSERT_TRUE(d.bypass());
  ASSERT_EQ(d.shadow_count, 1u);

  AuditBatch batch;
  RuleEventJson json("helper");
  const AuditBatch::RequestFields f{"192.0.2.1", req.method, req.url, req.host, req.user_agent};
  batch.add_line("{\"ready\":1}\n");
  batch.add_decision(json, *p, d, f, t1);
  batch.add_decision(json, *p, DecideOn(*p, "http://b.test/"), f, t1);  // no events
  batch.add_decision(json, *p, d, f, t2);
  EXPECT_EQ(batch.events(), 5u);
  std::string got, scratch;
  batch.format(got, scratch);

  std::string want = "{\"ready\":1}\n";
  for (auto t : {t1, t2}) {
    for (const Rule* r : {d.rule, d.shadow[0]}) {
      AuditEvent e;
      e.component = "helper";
      e.event = r == d.rule ? "bypass" : "shadow";
      e.rule = r->id;
      e.owner = r->owner;
      e.ticket = r->ticket;
      e.policy_sha256 = p->sha256();
      e.src = f.src;
      e.method = f.method;
      e.url = f.url;
      e.host = f.host;
      e.user_agent = f.user_agent;
      append_audit_json(want, e, t);
    }
  }
  EXPECT_EQ(got, want);

  AuditBatch other;
  other.swap(batch);
  EXPECT_TRUE(batch.empty());
  std::string again;
  other.format(again, scratch);
  EXPECT_EQ(again, want);
  other.clear();
  EXPECT_TRUE(other.empty());
  EXPECT_EQ(other.events(), 0u);
}

}  // namespace
}  // namespace authbypass
