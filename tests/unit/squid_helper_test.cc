// Squid helper protocol: line splitting, channel ids, %-decoding, answers, bad input.
#include "authbypass/squid_helper.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>

#include "authbypass/policy.h"

namespace authbypass::squid {
namespace {

// The parsed views point into the line: keep each line alive for the test's duration.
std::deque<std::string> g_lines;  // stable addresses
struct Keep {
  LineParser& p;
  ParsedLine parse(std::string line) {
    g_lines.push_back(std::move(line));
    return p.parse(g_lines.back());
  }
};

TEST(SquidFormat, DefaultAndParse) {
  EXPECT_EQ(Format::default_format().to_string(), "%SRC %METHOD %#URI %#>ha{User-Agent}");
  std::string err;
  auto f = Format::parse("%METHOD %>rd %>rP %PATH %SRC", &err);
  ASSERT_TRUE(f) << err;
  EXPECT_EQ(f->tokens.size(), 5u);
  EXPECT_FALSE(Format::parse("%SRC %#URI", &err));
  EXPECT_EQ(err, "format needs %METHOD");
  EXPECT_FALSE(Format::parse("%METHOD %SRC", &err));
  EXPECT_EQ(err, "format needs %#URI (or %>rd with %>rP and %PATH)");
  EXPECT_FALSE(Format::parse("%METHOD %#URI %LOGIN", &err));
  EXPECT_NE(err.find("unknown format token '%LOGIN'"), std::string::npos) << err;
  EXPECT_FALSE(Format::parse("%METHOD %#URI %#URI", &err));
  EXPECT_EQ(err, "format token '%#URI' given twice");
  EXPECT_FALSE(Format::parse("%METHOD %#URI %URI", &err));
}

class LineTest : public ::testing::Test {
 protected:
  LineParser auto_{Format::default_format(), ChannelMode::kAuto};
  LineParser yes_{Format::default_format(), ChannelMode::kYes};
  LineParser no_{Format::default_format(), ChannelMode::kNo};
};

TEST_F(LineTest, ChannelIdWithAndWithoutConcurrency) {
  const char* body =
      "10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2Fpca3.crl Microsoft-CryptoAPI%2F6.1";
  auto p = Keep{auto_}.parse(std::string("7 ") + body + " -");
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.channel, "7");
  EXPECT_EQ(p.input.src, "10.1.2.3");
  EXPECT_EQ(p.input.method, "GET");
  EXPECT_EQ(p.input.url, "http://crl.verisign.com/pca3.crl");
  EXPECT_EQ(p.input.user_agent, "Microsoft-CryptoAPI/6.1");
  p = Keep{auto_}.parse(std::string(body) + " -");  // no concurrency, with %DATA
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.channel, "");
  EXPECT_EQ(p.input.src, "10.1.2.3");
  p = Keep{auto_}.parse(body);  // no %DATA at all
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.input.user_agent, "Microsoft-CryptoAPI/6.1");
  p = Keep{yes_}.parse(std::string("123456789012 ") + body);
  EXPECT_EQ(p.channel, "123456789012");
  EXPECT_EQ(p.error, "");
  p = Keep{no_}.parse(std::string(body) + " -");
  EXPECT_EQ(p.error, "");
}

TEST_F(LineTest, DecodesEscapedTokensExactlyOnce) {
  auto p = Keep{auto_}.parse(
      "1 10.0.0.1 GET http%3A%2F%2Fh%2Fa%252e.crl Mozilla%2F4.0%20(x%3B%20MSOIDCRL) -");
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.input.url, "http://h/a%2e.crl");  // %25 -> '%', and no second round
  EXPECT_EQ(p.input.user_agent, "Mozilla/4.0 (x; MSOIDCRL)");
  // %URI (not %#URI) is taken as it is: Squid leaves '%' alone there.
  LineParser plain(*Format::parse("%SRC %METHOD %URI", nullptr), ChannelMode::kAuto);
  p = Keep{plain}.parse("2 10.0.0.1 GET http://h/a%2e.crl -");
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.input.url, "http://h/a%2e.crl");
}

TEST_F(LineTest, DashIsMissing) {
  auto p = Keep{auto_}.parse("1 - GET http%3A%2F%2Fh%2F - -");
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.input.src, "");
  EXPECT_EQ(p.input.user_agent, "");
  EXPECT_EQ(Keep{auto_}.parse("1 10.0.0.1 GET - - -").error, "no URI");
  EXPECT_EQ(Keep{auto_}.parse("1 10.0.0.1 - http%3A%2F%2Fh%2F - -").error, "no method");
}

TEST_F(LineTest, RebuildsUrlFromDomainPortPath) {
  LineParser parts(*Format::parse("%SRC %METHOD %>rd %>rP %PATH", nullptr), ChannelMode::kYes);
  auto p = Keep{parts}.parse("3 10.0.0.1 GET crl.example.com 80 /a/b.crl");
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.input.url, "http://crl.example.com:80/a/b.crl");
  p = Keep{parts}.parse("4 10.0.0.1 CONNECT login.example.com 443 -");
  EXPECT_EQ(p.input.url, "login.example.com:443");
}

TEST_F(LineTest, BadLinesAreErrorsThatKeepTheChannel) {
  struct Case {
    std::string line;
    std::string error;
  } cases[] = {
      {"", "empty line"},
      {"5 10.0.0.1 GET", "missing tokens for the helper's --format"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2F ua - extra",
       "extra tokens after the helper's --format and %DATA"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2F%zz ua -", "invalid % escape in URI"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2F% ua -", "invalid % escape in URI"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2F%0a.crl ua -", "control byte in URI"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2Fx ua%00 -", "control byte in User-Agent"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2Fx ua%0d%0aX-Evil%3a1 -", "control byte in User-Agent"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2F%C3%28 ua -", "invalid UTF-8 in URI"},
      {"5 10.0.0.1 GET http%3A%2F%2Fh%2Fx %ED%A0%80 -", "invalid UTF-8 in User-Agent"},
      {std::string("5 10.0.0.1 GET http%3A%2F%2Fh%2F ua\0x -", 36), "line contains a NUL byte"},
  };
  for (const Case& c : cases) {
    auto p = Keep{auto_}.parse(c.line);
    EXPECT_EQ(p.error, c.error) << c.line;
    if (!c.line.empty()) {
      EXPECT_EQ(p.channel, "5") << c.line;
    }
  }
  // With concurrency on, a non-numeric id is refused, and echoed only when harmless.
  auto p = Keep{yes_}.parse("abc 10.0.0.1 GET http%3A%2F%2Fh%2F ua -");
  EXPECT_EQ(p.error, "channel id is not a number");
  EXPECT_EQ(p.channel, "abc");
  p = Keep{yes_}.parse("a\"b 10.0.0.1 GET http%3A%2F%2Fh%2F ua -");
  EXPECT_EQ(p.channel, "");
}

TEST_F(LineTest, UserAgentCacheNeverMixesAnswers) {
  // Many distinct UAs cycle through the cache; each line must see its own.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) {
      std::string ua = "UA%20" + std::to_string(i);
      auto p = Keep{auto_}.parse("1 10.0.0.1 GET http%3A%2F%2Fh%2F " + ua + " -");
      EXPECT_EQ(p.input.user_agent, "UA " + std::to_string(i));
    }
    auto p = Keep{auto_}.parse("1 10.0.0.1 GET http%3A%2F%2Fh%2F bad%zz -");
    EXPECT_EQ(p.error, "invalid % escape in User-Agent");
  }
}

TEST_F(LineTest, UserAgentIdsNameOneText) {
  std::map<std::uint64_t, std::string> text_of;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) {
      for (LineParser* parser : {&auto_, &yes_}) {
        const std::string ua = "UA%20" + std::to_string(i % (round == 1 ? 5 : 40));
        auto p = Keep{*parser}.parse("1 10.0.0.1 GET http%3A%2F%2Fh%2F " + ua + " -");
        ASSERT_TRUE(p.error.empty()) << p.error;
        ASSERT_NE(p.input.user_agent_id, 0u);
        auto [it, fresh] = text_of.emplace(p.input.user_agent_id, std::string(p.input.user_agent));
        ASSERT_EQ(it->second, p.input.user_agent) << "id " << p.input.user_agent_id;
      }
    }
  }
  auto p = Keep{auto_}.parse("1 10.0.0.1 GET http%3A%2F%2Fh%2F - -");
  EXPECT_EQ(p.input.user_agent_id, 0u);  // no User-Agent: no id
}

TEST_F(LineTest, UserAgentSerialsNameOneText) {
  // The parser's cache of decoded User-Agents (fewer entries than the 40 texts) and the
  // request's serials: one serial never names two texts, whichever parser decoded it.
  std::map<std::uint64_t, std::string> text_of;
  Request req;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) {
      for (LineParser* parser : {&auto_, &yes_}) {
        const int n = i % (round == 1 ? 5 : 40);
        const std::string ua = "UA%20" + std::to_string(n);
        auto p = Keep{*parser}.parse("1 10.0.0.1 GET http%3A%2F%2Fh%2F " + ua + " -");
        ASSERT_TRUE(p.error.empty()) << p.error;
        ASSERT_EQ(p.input.user_agent, "UA " + std::to_string(n));
        ASSERT_TRUE(req.parse(p.input));
        ASSERT_NE(req.user_agent_serial, 0u);
        auto [it, fresh] = text_of.emplace(req.user_agent_serial, std::string(req.user_agent));
        ASSERT_EQ(it->second, req.user_agent) << "serial " << req.user_agent_serial;
      }
    }
  }
  auto p = Keep{auto_}.parse("1 10.0.0.1 GET http%3A%2F%2Fh%2F - -");
  ASSERT_TRUE(req.parse(p.input));
  EXPECT_EQ(req.user_agent_serial, 0u);  // no User-Agent: serial 0
}

TEST(SquidAnswers, OkErrBh) {
  auto loaded = load_policy_text(
      "version: 1\nrules:\n  - id: crl-files\n    match: {hosts: [a.test], path_suffix: [.crl]}\n",
      "p.yaml");
  ASSERT_TRUE(loaded.ok());
  Request req;
  ASSERT_TRUE(req.parse({"GET", "http://a.test/x.crl", "", ""}));
  Decision d = loaded.policy->decide(req, today_utc());
  std::string out;
  append_decision(out, "12", d);
  EXPECT_EQ(out, "12 OK log=crl-files tag=authbypass/crl-files\n");
  out.clear();
  append_decision(out, "", Decision{});
  EXPECT_EQ(out, "ERR\n");
  out.clear();
  append_error(out, "3", "bad \"thing\"\nX: y");
  EXPECT_EQ(out, "3 ERR message=\"bad ?thing??X: y\"\n");
  out.clear();
  append_broken(out, "4", "internal error");
  EXPECT_EQ(out, "4 BH message=\"internal error\"\n");
}

TEST(SquidDecode, Utf8Validation) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(
      valid_utf8("b\xc3\xbc"
                 "cher \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(valid_utf8("\xe2\x82"));          // truncated
  std::string out;
  EXPECT_TRUE(rfc1738_unescape("a%20b%2fc", out));
  EXPECT_EQ(out, "a b/c");
  EXPECT_FALSE(rfc1738_unescape("a%2", out));
  EXPECT_FALSE(rfc1738_unescape("a%g0", out));
}

}  // namespace
}  // namespace authbypass::squid
