// Tests for Request::parse (authbypass/request.h): URL forms, host and port normalization,
// path splitting and the normalized match_path, limits, and reuse of one Request object.

#include "authbypass/request.h"

#include <gtest/gtest.h>

#include <cctype>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "authbypass/ip.h"
#include "text.h"

namespace authbypass {
namespace {

RequestInput In(std::string_view method, std::string_view url, std::string_view user_agent = {},
                std::string_view src = {}) {
  return {.method = method, .url = url, .user_agent = user_agent, .src = src};
}

// Parses a request; the views in `in` only need to live for the call.
Request Parse(std::string_view method, std::string_view url, std::string_view user_agent = {},
              std::string_view src = {}) {
  Request req;
  req.parse(RequestInput{.method = method, .url = url, .user_agent = user_agent, .src = src});
  return req;
}

Request Get(std::string_view url) {
  return Parse("GET", url);
}

IpAddress Ip(std::string_view text) {
  auto ip = IpAddress::parse(text);
  EXPECT_TRUE(ip.has_value()) << text;
  return ip.value_or(IpAddress{});
}

// Expects a parse failure with a reason.
void ExpectMalformed(std::string_view method, std::string_view url, std::string_view ua = {},
                     std::string_view src = {}) {
  Request req;
  const bool ok =
      req.parse(RequestInput{.method = method, .url = url, .user_agent = ua, .src = src});
  EXPECT_FALSE(ok) << method << " \"" << url << "\" parsed; host=\"" << req.host << "\"";
  EXPECT_FALSE(req.ok()) << method << " \"" << url << "\"";
  EXPECT_FALSE(req.error().empty()) << method << " \"" << url << "\": no error message";
}

// ---------------------------------------------------------------------------------------------
// Absolute-form URLs

TEST(RequestParse, PlainHttpUrl) {
  Request req;
  const bool ok = req.parse({.method = "GET",
                             .url = "http://crl.verisign.com/pca3.crl",
                             .user_agent = "Microsoft-CryptoAPI/6.1",
                             .src = "10.1.2.3"});
  ASSERT_TRUE(ok) << req.error();
  EXPECT_TRUE(req.ok());
  EXPECT_TRUE(req.error().empty());
  EXPECT_EQ(req.method, "GET");
  EXPECT_FALSE(req.is_connect);
  EXPECT_EQ(req.scheme, "http");
  EXPECT_EQ(req.host, "crl.verisign.com");
  EXPECT_EQ(req.host_kind, HostKind::kName);
  EXPECT_EQ(req.port, 80);
  EXPECT_EQ(req.path, "/pca3.crl");
  EXPECT_EQ(req.params, "");
  EXPECT_EQ(req.query, "");
  EXPECT_TRUE(req.match_path_ok);
  EXPECT_EQ(req.match_path, "/pca3.crl");
  EXPECT_EQ(req.user_agent, "Microsoft-CryptoAPI/6.1");
  EXPECT_EQ(req.user_agent_lower, "microsoft-cryptoapi/6.1");
  ASSERT_TRUE(req.src.has_value());
  EXPECT_EQ(*req.src, Ip("10.1.2.3"));
  EXPECT_EQ(req.url, "http://crl.verisign.com/pca3.crl");
}

TEST(RequestParse, SchemeIsCaseInsensitive) {
  for (std::string_view url :
       {"HTTP://example.com/a", "Http://example.com/a", "hTtP://example.com/a"}) {
    const Request req = Get(url);
    ASSERT_TRUE(req.ok()) << url << ": " << req.error();
    EXPECT_EQ(req.scheme, "http") << url;
    EXPECT_EQ(req.port, 80) << url;
    EXPECT_EQ(req.url, url);  // kept as given, for logs
  }
}

TEST(RequestParse, HttpsDefaultsToPort443) {
  for (std::string_view url : {"https://example.com/a", "HTTPS://example.com/a"}) {
    const Request req = Get(url);
    ASSERT_TRUE(req.ok()) << url << ": " << req.error();
    EXPECT_EQ(req.scheme, "https");
    EXPECT_EQ(req.port, 443);
    EXPECT_EQ(req.path, "/a");
  }
}

TEST(RequestParse, ExplicitPort) {
  const Request req = Get("http://example.com:8080/a.crl");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host, "example.com");
  EXPECT_EQ(req.port, 8080);
  EXPECT_EQ(req.path, "/a.crl");

  const Request https80 = Get("https://example.com:80/");
  ASSERT_TRUE(https80.ok()) << https80.error();
  EXPECT_EQ(https80.port, 80);

  const Request max = Get("http://example.com:65535/");
  ASSERT_TRUE(max.ok()) << max.error();
  EXPECT_EQ(max.port, 65535);

  const Request one = Get("http://example.com:1/");
  ASSERT_TRUE(one.ok()) << one.error();
  EXPECT_EQ(one.port, 1);
}

TEST(RequestParse, ExplicitDefaultPort) {
  const Request req = Get("http://example.com:80/a.crl");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.port, 80);
  EXPECT_EQ(req.host, "example.com");
}

TEST(RequestParse, EmptyPortMeansDefault) {
  const Request http = Get("http://example.com:/a");
  ASSERT_TRUE(http.ok()) << http.error();
  EXPECT_EQ(http.host, "example.com");
  EXPECT_EQ(http.port, 80);
  EXPECT_EQ(http.path, "/a");

  const Request https = Get("https://example.com:/");
  ASSERT_TRUE(https.ok()) << https.error();
  EXPECT_EQ(https.port, 443);
}

TEST(RequestParse, BadPortsAreErrors) {
  for (std::string_view url :
       {"http://example.com:0/", "http://example.com:65536/", "http://example.com:99999/",
        "http://example.com:4294967376/",  // 2^32 + 80
        "http://example.com:18446744073709551696/", "http://example.com:8o/",
        "http://example.com:80a/", "http://example.com:-1/", "http://example.com:+80/",
        "http://example.com: 80/", "http://example.com:0x50/", "http://example.com:80:80/"}) {
    ExpectMalformed("GET", url);
  }
}

TEST(RequestParse, MissingPathIsSlash) {
  for (std::string_view url : {"http://example.com", "http://example.com:8080"}) {
    const Request req = Get(url);
    ASSERT_TRUE(req.ok()) << url << ": " << req.error();
    EXPECT_EQ(req.host, "example.com");
    EXPECT_EQ(req.path, "/");
    EXPECT_TRUE(req.match_path_ok);
    EXPECT_EQ(req.match_path, "/");
  }
  const Request with_query = Get("http://example.com?a=b");
  ASSERT_TRUE(with_query.ok()) << with_query.error();
  EXPECT_EQ(with_query.host, "example.com");
  EXPECT_EQ(with_query.path, "/");
  EXPECT_EQ(with_query.query, "a=b");
}

TEST(RequestParse, MethodKeptAsSent) {
  for (std::string_view method : {"GET", "HEAD", "POST", "PUT", "get", "PROPFIND"}) {
    const Request req = Parse(method, "http://example.com/");
    ASSERT_TRUE(req.ok()) << method << ": " << req.error();
    EXPECT_EQ(req.method, method);
    EXPECT_FALSE(req.is_connect);
  }
}

TEST(RequestParse, OverlongMethodIsAnError) {
  ExpectMalformed(std::string(kMaxMethodLength + 1, 'G'), "http://example.com/");
}

// ---------------------------------------------------------------------------------------------
// CONNECT authority-form

TEST(RequestParse, ConnectAuthorityForm) {
  const Request req = Parse("CONNECT", "login.example.com:443");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_TRUE(req.is_connect);
  EXPECT_EQ(req.method, "CONNECT");
  EXPECT_EQ(req.scheme, "");
  EXPECT_EQ(req.host, "login.example.com");
  EXPECT_EQ(req.host_kind, HostKind::kName);
  EXPECT_EQ(req.port, 443);
  EXPECT_EQ(req.query, "");
  EXPECT_EQ(req.params, "");
}

TEST(RequestParse, ConnectNormalizesHost) {
  const Request req = Parse("CONNECT", "Login.Example.COM.:8443");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host, "login.example.com");
  EXPECT_EQ(req.port, 8443);
}

TEST(RequestParse, ConnectToIpLiterals) {
  const Request v4 = Parse("CONNECT", "192.0.2.7:443");
  ASSERT_TRUE(v4.ok()) << v4.error();
  EXPECT_TRUE(v4.is_connect);
  EXPECT_EQ(v4.host_kind, HostKind::kIpv4);
  EXPECT_EQ(v4.host, "192.0.2.7");
  EXPECT_EQ(v4.host_ip, Ip("192.0.2.7"));
  EXPECT_EQ(v4.port, 443);

  const Request v6 = Parse("CONNECT", "[2001:DB8::1]:443");
  ASSERT_TRUE(v6.ok()) << v6.error();
  EXPECT_EQ(v6.host_kind, HostKind::kIpv6);
  EXPECT_EQ(v6.host, "2001:db8::1");
  EXPECT_EQ(v6.host_ip, Ip("2001:db8::1"));
  EXPECT_EQ(v6.port, 443);
}

TEST(RequestParse, ConnectRequiresPort) {
  ExpectMalformed("CONNECT", "login.example.com");
  ExpectMalformed("CONNECT", "login.example.com:");
  ExpectMalformed("CONNECT", "login.example.com:0");
  ExpectMalformed("CONNECT", "login.example.com:65536");
  ExpectMalformed("CONNECT", "login.example.com:https");
  ExpectMalformed("CONNECT", "[2001:db8::1]");
  ExpectMalformed("CONNECT", "2001:db8::1:443");  // unbracketed IPv6
  ExpectMalformed("CONNECT", ":443");
  ExpectMalformed("CONNECT", "");
}

TEST(RequestParse, ConnectOddNumericHostIsAnError) {
  ExpectMalformed("CONNECT", "3221225991:443");
  ExpectMalformed("CONNECT", "0xc0.0.2.7:443");
}

TEST(RequestParse, AuthorityFormWithoutConnectIsAnError) {
  ExpectMalformed("GET", "example.com:80");
}

// ---------------------------------------------------------------------------------------------
// IP literal hosts

TEST(RequestParse, Ipv4Literal) {
  const Request req = Get("http://192.0.2.7/a.crl");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host_kind, HostKind::kIpv4);
  EXPECT_EQ(req.host, "192.0.2.7");
  EXPECT_EQ(req.host_ip, Ip("192.0.2.7"));
  EXPECT_EQ(req.port, 80);
  EXPECT_EQ(req.path, "/a.crl");
}

TEST(RequestParse, Ipv4LiteralWithPort) {
  const Request req = Get("http://192.0.2.7:8080/");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host_kind, HostKind::kIpv4);
  EXPECT_EQ(req.host_ip, Ip("192.0.2.7"));
  EXPECT_EQ(req.port, 8080);
}

TEST(RequestParse, BracketedIpv6Literal) {
  const Request req = Get("http://[2001:db8::1]/x.crl");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host_kind, HostKind::kIpv6);
  EXPECT_EQ(req.host, "2001:db8::1");  // no brackets
  EXPECT_EQ(req.host_ip, Ip("2001:db8::1"));
  EXPECT_TRUE(req.host_ip.v6);
  EXPECT_EQ(req.port, 80);
  EXPECT_EQ(req.path, "/x.crl");
  EXPECT_EQ(req.match_path, "/x.crl");
}

TEST(RequestParse, Ipv6LiteralIsCanonicalized) {
  const Request req = Get("http://[2001:0DB8:0:0:0:0:0:0001]:8080/");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host_kind, HostKind::kIpv6);
  EXPECT_EQ(req.host, "2001:db8::1");
  EXPECT_EQ(req.port, 8080);

  const Request https = Get("https://[::1]/");
  ASSERT_TRUE(https.ok()) << https.error();
  EXPECT_EQ(https.host, "::1");
  EXPECT_EQ(https.port, 443);
}

TEST(RequestParse, MalformedIpv6LiteralsAreErrors) {
  for (std::string_view url :
       {"http://2001:db8::1/", "http://[2001:db8::1/", "http://2001:db8::1]/", "http://[]/",
        "http://[2001:db8::g]/", "http://[192.0.2.7]/", "http://[2001:db8::1]x/",
        "http://[[2001:db8::1]]/"}) {
    ExpectMalformed("GET", url);
  }
}

TEST(RequestParse, OddNumericHostsAreErrors) {
  for (std::string_view url :
       {"http://3221225991/", "http://3221225991/a.crl", "http://0xc0.0.2.7/",
        "http://0xC0.0.2.7/a.crl", "http://0300.0.2.7/", "http://192.0.2/", "http://192.0/",
        "http://0xc0000207/", "http://0/", "http://192.0.2.07/", "http://192.0.2.256/",
        "http://1.2.3.4.5/"}) {
    ExpectMalformed("GET", url);
  }
}

// ---------------------------------------------------------------------------------------------
// Host names

TEST(RequestParse, HostLowerCasedAndOneTrailingDotDropped) {
  const Request req = Get("http://CRL.VeriSign.COM./pca3.crl");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host, "crl.verisign.com");
  EXPECT_EQ(req.host_kind, HostKind::kName);

  const Request with_port = Get("http://Example.COM.:8080/");
  ASSERT_TRUE(with_port.ok()) << with_port.error();
  EXPECT_EQ(with_port.host, "example.com");
  EXPECT_EQ(with_port.port, 8080);
}

TEST(RequestParse, EmptyLabelsAreErrors) {
  for (std::string_view url : {"http://example.com../", "http://a..b/", "http://.example.com/",
                               "http://./", "http:///x", "http://:80/", "http://..com/"}) {
    ExpectMalformed("GET", url);
  }
}

TEST(RequestParse, NonAsciiHostBecomesPunycode) {
  const Request req =
      Get("http://b\xC3\xBC"
          "cher.example/");  // bücher.example
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.host, "xn--bcher-kva.example");
  EXPECT_EQ(req.host_kind, HostKind::kName);

  const Request puny = Get("http://XN--BCHER-KVA.example/");
  ASSERT_TRUE(puny.ok()) << puny.error();
  EXPECT_EQ(puny.host, "xn--bcher-kva.example");
}

TEST(RequestParse, InvalidUtf8HostIsAnError) {
  ExpectMalformed("GET",
                  "http://b\xFC"
                  "cher.example/");  // Latin-1, not UTF-8
}

TEST(RequestParse, UserinfoIsNotTheHost) {
  const Request simple = Get("http://a@b/");
  ASSERT_TRUE(simple.ok()) << simple.error();
  EXPECT_EQ(simple.host, "b");
  EXPECT_EQ(simple.port, 80);

  const Request trick = Get("http://crl.verisign.com@evil.test/");
  ASSERT_TRUE(trick.ok()) << trick.error();
  EXPECT_EQ(trick.host, "evil.test");

  const Request with_password = Get("http://user:pass@evil.test:8080/x.crl");
  ASSERT_TRUE(with_password.ok()) << with_password.error();
  EXPECT_EQ(with_password.host, "evil.test");
  EXPECT_EQ(with_password.port, 8080);
  EXPECT_EQ(with_password.path, "/x.crl");

  const Request port_trick = Get("http://crl.verisign.com:80@evil.test/");
  ASSERT_TRUE(port_trick.ok()) << port_trick.error();
  EXPECT_EQ(port_trick.host, "evil.test");
  EXPECT_EQ(port_trick.port, 80);
}

TEST(RequestParse, HostHelperNormalizesLikeParse) {
  std::string out;
  std::string error;
  ASSERT_TRUE(normalize_host_name("CRL.VeriSign.COM.", out, &error)) << error;
  EXPECT_EQ(out, "crl.verisign.com");
  ASSERT_TRUE(
      normalize_host_name("b\xC3\xBC"
                          "cher.example",
                          out, &error))
      << error;
  EXPECT_EQ(out, "xn--bcher-kva.example");

  error.clear();
  EXPECT_FALSE(normalize_host_name("a..b", out, &error));
  EXPECT_FALSE(error.empty());
  error.clear();
  EXPECT_FALSE(normalize_host_name("example.com..", out, &error));
  EXPECT_FALSE(error.empty());
  error.clear();
  EXPECT_FALSE(normalize_host_name("", out, &error));
  EXPECT_FALSE(error.empty());
}

// ---------------------------------------------------------------------------------------------
// Path, ;params, query

TEST(RequestParse, QueryIsNotPath) {
  const Request req = Get("http://evil.test/x.exe?x=.crl");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.path, "/x.exe");
  EXPECT_EQ(req.query, "x=.crl");
  EXPECT_EQ(req.params, "");
  EXPECT_EQ(req.match_path, "/x.exe");

  const Request bare = Get("http://evil.test/x.exe?.crl");
  ASSERT_TRUE(bare.ok()) << bare.error();
  EXPECT_EQ(bare.path, "/x.exe");
  EXPECT_EQ(bare.query, ".crl");
  EXPECT_EQ(bare.match_path, "/x.exe");
}

// ;params are split off for logs, and make the path unmatchable: origins disagree on them.
TEST(RequestParse, ParamsAreNotPathAndMakeItUnmatchable) {
  const Request req = Get("http://evil.test/index.html;.crl");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.path, "/index.html");
  EXPECT_EQ(req.params, ".crl");
  EXPECT_EQ(req.query, "");
  EXPECT_FALSE(req.match_path_ok);
  EXPECT_EQ(req.match_path, "");
  ASSERT_NE(req.match_path_why, nullptr);
  EXPECT_NE(std::string_view(req.match_path_why).find(";params"), std::string_view::npos);
}

TEST(RequestParse, ParamsThenQuery) {
  const Request req = Get("http://evil.test/x;p=1?q=2");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.path, "/x");
  EXPECT_EQ(req.params, "p=1");
  EXPECT_EQ(req.query, "q=2");
  EXPECT_FALSE(req.match_path_ok);
}

// text::has_double_slash against a plain search, for every length 0..40 and every place of
// a "//" (and of single slashes around it), so that each 16-byte block and tail is covered.
TEST(RequestParse, DoubleSlashScanAgreesWithPlainSearch) {
  for (std::size_t n = 0; n <= 40; ++n) {
    for (std::size_t at = 0; at <= n; ++at) {
      for (int variant = 0; variant < 3; ++variant) {
        std::string s(n, 'a');
        if (at < n) s[at] = '/';
        if (variant >= 1 && at + 1 < n) s[at + 1] = '/';
        if (variant == 2 && at + 3 < n) s[at + 3] = '/';
        // Guard bytes around the view: a scan that reads past it would see these.
        const std::string padded = "//" + s + "//";
        const std::string_view view(padded.data() + 2, n);
        EXPECT_EQ(text::has_double_slash(view.data(), view.size()),
                  view.find("//") != std::string_view::npos)
            << "'" << view << "'";
      }
    }
  }
}

// The paths of the attacks on the shipped /pki/ and trustedr/ rules: each is read as a
// path inside the prefix by one reader and outside it by another, so none is matchable.
TEST(RequestParse, PathsOriginsReadDifferentlyAreUnmatchable) {
  struct Case {
    std::string_view url;
    std::string_view path;  // as split off (kept for logs)
    std::string_view why;   // a word of match_path_why
  };
  for (const Case& c : {
           Case{"http://www.microsoft.com/pki/x;/../../a.exe", "/pki/x", ";params"},
           Case{"http://www.microsoft.com/pki//../a.exe", "/pki//../a.exe", "'//'"},
           Case{"http://www.microsoft.com/pki/x#/../../a.exe", "/pki/x", "fragment"},
           Case{"http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/"
                "x.cab;/../../../x.exe",
                "/msdownload/update/v3/static/trustedr/x.cab", ";params"},
           Case{"http://www.microsoft.com/x%2f..%2fpki/a.crl", "/x%2f..%2fpki/a.crl", "encoded"},
           Case{"http://www.microsoft.com/pki/%252e%252e/a.exe", "/pki/%252e%252e/a.exe",
                "encoded"},
           Case{"http://www.microsoft.com/x/%2e%2e/pki/a.crl", "/x/%2e%2e/pki/a.crl",
                "dot-segment"},
           Case{"http://www.microsoft.com/x/.../pki/a.crl", "/x/.../pki/a.crl", "dot-segment"},
           Case{"http://www.microsoft.com/pki/..%5ca.exe", "/pki/..%5ca.exe", "encoded"},
           Case{"http://www.microsoft.com/pki/%c0%ae%c0%ae/a.exe", "/pki/%c0%ae%c0%ae/a.exe",
                "non-ASCII"},
       }) {
    SCOPED_TRACE(c.url);
    for (bool shortcut : {true, false}) {
      Request req;
      const RequestInput in{.method = "GET", .url = c.url, .user_agent = {}, .src = {}};
      ASSERT_TRUE(shortcut ? req.parse(in) : req.parse_reference(in)) << req.error();
      EXPECT_EQ(req.path, c.path);
      EXPECT_FALSE(req.match_path_ok);
      EXPECT_EQ(req.match_path, "");
      ASSERT_NE(req.match_path_why, nullptr);
      EXPECT_NE(std::string_view(req.match_path_why).find(c.why), std::string_view::npos)
          << req.match_path_why;
      EXPECT_EQ(req.url, c.url);  // never rewritten
    }
  }
}

TEST(RequestParse, SemicolonInQueryIsQuery) {
  const Request req = Get("http://evil.test/x.crl?a;b");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.path, "/x.crl");
  EXPECT_EQ(req.params, "");
  EXPECT_EQ(req.query, "a;b");
}

TEST(RequestParse, EmptyQueryAndParams) {
  const Request req = Get("http://evil.test/x.crl;?");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.path, "/x.crl");
  EXPECT_EQ(req.params, "");
  EXPECT_EQ(req.query, "");
}

// ---------------------------------------------------------------------------------------------
// match_path: decoded once, dot-segments removed, lower-cased; path itself never rewritten

struct MatchPathCase {
  std::string_view url;
  std::string_view match_path;
};

class RequestMatchPath : public ::testing::TestWithParam<MatchPathCase> {};

TEST_P(RequestMatchPath, Normalizes) {
  const Request req = Get(GetParam().url);
  ASSERT_TRUE(req.ok()) << GetParam().url << ": " << req.error();
  EXPECT_TRUE(req.match_path_ok) << GetParam().url;
  EXPECT_EQ(req.match_path, GetParam().match_path) << GetParam().url;
}

INSTANTIATE_TEST_SUITE_P(
    RequestParse, RequestMatchPath,
    ::testing::Values(
        MatchPathCase{"http://h/X.CRL", "/x.crl"}, MatchPathCase{"http://h/a/../X.CRL", "/x.crl"},
        MatchPathCase{"http://h/x.crl/../evil.exe", "/evil.exe"},
        MatchPathCase{"http://h/%41%42c.CRL", "/abc.crl"},
        MatchPathCase{"http://h/a/.%41/x", "/a/.a/x"}, MatchPathCase{"http://h/a/%2e.x", "/a/..x"},
        MatchPathCase{"http://h/x%2Ecrl", "/x.crl"}, MatchPathCase{"http://h/./x.crl", "/x.crl"},
        MatchPathCase{"http://h/a/./b/./c", "/a/b/c"},
        MatchPathCase{"http://h/a/b/c/../../d", "/a/d"}, MatchPathCase{"http://h/a/b/..", "/a/"},
        MatchPathCase{"http://h/a/b/.", "/a/b/"}, MatchPathCase{"http://h/..", "/"},
        MatchPathCase{"http://h/../../x.crl", "/x.crl"},
        MatchPathCase{"http://h/a..b/x.crl", "/a..b/x.crl"},
        MatchPathCase{"http://h/.hidden/..x", "/.hidden/..x"},
        MatchPathCase{"http://h/a%20b.crl", "/a b.crl"},
        MatchPathCase{"http://h/PKI/Root.CRL?Q=1", "/pki/root.crl"},
        MatchPathCase{"http://h/a.crl?x;y", "/a.crl"}, MatchPathCase{"http://h/a/", "/a/"}));

TEST(RequestParse, PathIsKeptAsSent) {
  const Request req = Get("http://h/A/../%42/X.CRL");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.path, "/A/../%42/X.CRL");
  EXPECT_EQ(req.match_path, "/b/x.crl");
  EXPECT_EQ(req.url, "http://h/A/../%42/X.CRL");
}

class RequestUnmatchablePath : public ::testing::TestWithParam<std::string_view> {};

TEST_P(RequestUnmatchablePath, MatchPathNotOk) {
  const Request req = Get(GetParam());
  ASSERT_TRUE(req.ok()) << GetParam() << ": " << req.error();
  EXPECT_FALSE(req.match_path_ok) << GetParam() << " -> \"" << req.match_path << "\"";
  EXPECT_TRUE(req.match_path.empty()) << GetParam() << " -> \"" << req.match_path << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    RequestParse, RequestUnmatchablePath,
    ::testing::Values(
        // NUL.
        "http://h/a%00.crl", "http://h/x.crl%00",
        // Malformed escapes.
        "http://h/a%zz.crl", "http://h/x.crl%4", "http://h/x.crl%", "http://h/a%4g.crl",
        "http://h/a%%32e.crl",
        // Decoded control bytes.
        "http://h/a%0a.crl", "http://h/a%0D%0A.crl", "http://h/a%09.crl", "http://h/a%1f.crl",
        "http://h/a%7f.crl",
        // Decoded delimiters.
        "http://h/x.exe%3f.crl", "http://h/x.exe%3F.crl", "http://h/x.exe%23.crl",
        "http://h/x.exe%3b.crl", "http://h/..%5c..%5cx.crl", "http://h/a%5Cb.crl",
        // ;params and fragments, even empty ones.
        "http://h/a.crl;P", "http://h/a.crl;", "http://h/a.crl;?q", "http://h/a.crl#",
        "http://h/a.crl#x", "http://h/a.crl?q#x", "http://h#x",
        // Empty segments.
        "http://h//a.crl", "http://h/a//b.crl", "http://h/a.crl//",
        "http://h/0123456789abcdef0123456789//a.crl",
        "http://h/0123456789abcdef0123456789abcdef.crl//",
        // Encoded separators and double encoding.
        "http://h/a%2fb.crl", "http://h/a%2Fb.crl", "http://h/a%25b.crl",
        "http://h/a/%252e%252e/x.crl", "http://h/a/%252e",
        // Encoded or odd dot-segments.
        "http://h/a/%2e%2e/x.crl", "http://h/a/%2E%2E/x.crl", "http://h/a/%2e/x.crl",
        "http://h/a/.%2e/x.crl", "http://h/a/%2e.", "http://h/a/.../x.crl",
        "http://h/a/..%20/x.crl", "http://h/a/%20../x.crl", "http://h/a/%20/x.crl",
        // Non-ASCII, raw or encoded.
        "http://h/\xc3\xbc.crl", "http://h/%C3%BC.crl", "http://h/%c0%ae.crl", "http://h/%ff.crl"));

// ---------------------------------------------------------------------------------------------
// Malformed input

TEST(RequestParse, MissingOrNonAbsoluteUrlIsAnError) {
  ExpectMalformed("GET", "");
  ExpectMalformed("GET", "/path");
  ExpectMalformed("GET", "/x.crl");
  ExpectMalformed("GET", "*");
  ExpectMalformed("GET", "-");
  ExpectMalformed("GET", "crl.verisign.com/pca3.crl");
  ExpectMalformed("GET", "//crl.verisign.com/pca3.crl");
}

TEST(RequestParse, OtherSchemesAreErrors) {
  for (std::string_view url :
       {"ftp://example.com/x.crl", "file:///etc/passwd", "ws://example.com/", "gopher://h/",
        "httpx://example.com/", "http:example.com/", "http//example.com/", ":/example.com/",
        "ldap://example.com/cn=x?certificateRevocationList"}) {
    ExpectMalformed("GET", url);
  }
}

TEST(RequestParse, SpacesAndControlBytesAreErrors) {
  for (std::string_view url :
       {"http://h/a b.crl", "http://h/a\tb.crl", "http://h/a.crl\r\n", "http://h/a\n.crl",
        "http://h/\x01.crl", "http://h/a\x7f.crl", " http://h/a.crl", "http://h/a.crl ",
        "http://h /a.crl", "http://h\t/a.crl"}) {
    ExpectMalformed("GET", url);
  }
  ExpectMalformed("GET", std::string_view("http://h/a\0.crl", 15));
  ExpectMalformed("GET", std::string_view("http://h\0.evil/", 15));
}

TEST(RequestParse, UrlLengthLimit) {
  const std::string prefix = "http://example.com/";
  std::string at_limit = prefix + std::string(kMaxUrlLength - prefix.size(), 'a');
  ASSERT_EQ(at_limit.size(), kMaxUrlLength);
  const Request ok = Get(at_limit);
  EXPECT_TRUE(ok.ok()) << ok.error();

  std::string over = at_limit + "a";
  ExpectMalformed("GET", over);

  std::string way_over = prefix + std::string(4 * kMaxUrlLength, 'a') + ".crl";
  ExpectMalformed("GET", way_over);
}

TEST(RequestParse, UserAgentLengthLimit) {
  const std::string at_limit(kMaxUserAgentLength, 'u');
  const Request ok = Parse("GET", "http://example.com/", at_limit);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok.user_agent, at_limit);

  ExpectMalformed("GET", "http://example.com/", std::string(kMaxUserAgentLength + 1, 'u'));
}

TEST(RequestParse, UserAgentLowerCased) {
  const Request req = Parse("GET", "http://example.com/",
                            "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; MSOIDCRL 7.250)");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.user_agent, "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; MSOIDCRL 7.250)");
  EXPECT_EQ(req.user_agent_lower,
            "mozilla/4.0 (compatible; msie 7.0; windows nt 6.1; msoidcrl 7.250)");
}

TEST(RequestParse, EmptyUserAgent) {
  const Request req = Parse("GET", "http://example.com/", "");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_EQ(req.user_agent, "");
  EXPECT_EQ(req.user_agent_lower, "");
}

// ---------------------------------------------------------------------------------------------
// Client address

TEST(RequestParse, SourceAddress) {
  const Request v4 = Parse("GET", "http://example.com/", "", "10.1.2.3");
  ASSERT_TRUE(v4.ok()) << v4.error();
  ASSERT_TRUE(v4.src.has_value());
  EXPECT_EQ(*v4.src, Ip("10.1.2.3"));

  const Request v6 = Parse("GET", "http://example.com/", "", "2001:DB8::5");
  ASSERT_TRUE(v6.ok()) << v6.error();
  ASSERT_TRUE(v6.src.has_value());
  EXPECT_TRUE(v6.src->v6);
  EXPECT_EQ(*v6.src, Ip("2001:db8::5"));
}

TEST(RequestParse, EmptySourceIsUnknown) {
  const Request req = Parse("GET", "http://example.com/", "", "");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_FALSE(req.src.has_value());
}

TEST(RequestParse, MalformedSourceIsAnError) {
  for (std::string_view src : {"10.1.2", "010.1.2.3", "10.1.2.3.4", "host.example", "10.1.2.3 ",
                               "[2001:db8::1]", "10.0.0.0/8", "::g"}) {
    ExpectMalformed("GET", "http://example.com/", "", src);
  }
}

// ---------------------------------------------------------------------------------------------
// Reuse

TEST(RequestParse, ReparseResetsEveryField) {
  Request req;
  ASSERT_TRUE(req.parse({.method = "CONNECT",
                         .url = "[2001:db8::1]:443",
                         .user_agent = "Microsoft-CryptoAPI/10.0",
                         .src = "10.1.2.3"}))
      << req.error();
  ASSERT_TRUE(req.is_connect);
  ASSERT_TRUE(req.parse({.method = "GET",
                         .url = "https://a@Example.COM:8443/A/../B.crl;p?q",
                         .user_agent = "Microsoft-CryptoAPI/10.0",
                         .src = "2001:db8::7"}))
      << req.error();
  ASSERT_EQ(req.params, "p");
  ASSERT_EQ(req.query, "q");

  ASSERT_TRUE(req.parse({.method = "HEAD", .url = "http://h/x", .user_agent = "", .src = ""}))
      << req.error();
  EXPECT_TRUE(req.ok());
  EXPECT_EQ(req.method, "HEAD");
  EXPECT_FALSE(req.is_connect);
  EXPECT_EQ(req.scheme, "http");
  EXPECT_EQ(req.host, "h");
  EXPECT_EQ(req.host_kind, HostKind::kName);
  EXPECT_EQ(req.port, 80);
  EXPECT_EQ(req.path, "/x");
  EXPECT_EQ(req.params, "");
  EXPECT_EQ(req.query, "");
  EXPECT_TRUE(req.match_path_ok);
  EXPECT_EQ(req.match_path, "/x");
  EXPECT_EQ(req.user_agent, "");
  EXPECT_EQ(req.user_agent_lower, "");
  EXPECT_FALSE(req.src.has_value());
  EXPECT_EQ(req.url, "http://h/x");
}

TEST(RequestParse, ReparseAfterIpLiteralResetsHostKind) {
  Request req;
  ASSERT_TRUE(req.parse(In("GET", "http://[2001:db8::1]/"))) << req.error();
  ASSERT_EQ(req.host_kind, HostKind::kIpv6);
  ASSERT_TRUE(req.parse(In("GET", "http://example.com/"))) << req.error();
  EXPECT_EQ(req.host_kind, HostKind::kName);
  EXPECT_EQ(req.host, "example.com");
}

TEST(RequestParse, ReparseAfterUnmatchablePathResets) {
  Request req;
  ASSERT_TRUE(req.parse(In("GET", "http://h/a%00.crl"))) << req.error();
  ASSERT_FALSE(req.match_path_ok);
  ASSERT_TRUE(req.parse(In("GET", "http://h/B.CRL"))) << req.error();
  EXPECT_TRUE(req.match_path_ok);
  EXPECT_EQ(req.match_path, "/b.crl");

  ASSERT_TRUE(req.parse(In("GET", "http://h/a%zz"))) << req.error();
  EXPECT_FALSE(req.match_path_ok);
  EXPECT_TRUE(req.match_path.empty());
}

TEST(RequestParse, ReparseAfterErrorClearsError) {
  Request req;
  EXPECT_FALSE(req.parse(In("GET", "ftp://h/x")));
  EXPECT_FALSE(req.ok());
  ASSERT_TRUE(req.parse(In("GET", "http://h/x.crl"))) << req.error();
  EXPECT_TRUE(req.ok());
  EXPECT_TRUE(req.error().empty());
  EXPECT_EQ(req.host, "h");
  EXPECT_EQ(req.match_path, "/x.crl");
}

TEST(RequestParse, ReparseGoodThenBadIsAnError) {
  Request req;
  ASSERT_TRUE(req.parse(In("GET", "http://h/x.crl", "", "10.1.2.3"))) << req.error();
  EXPECT_FALSE(req.parse(In("GET", "http://3221225991/x.crl")));
  EXPECT_FALSE(req.ok());
  EXPECT_FALSE(req.error().empty());
  EXPECT_FALSE(req.parse(In("GET", "http://h/x.crl", "", "bogus")));
  EXPECT_FALSE(req.ok());
}

TEST(RequestParse, InputViewsNeedNotOutliveTheParse) {
  Request req;
  {
    std::string url = "http://Example.com/X.crl?q";
    std::string ua = "Agent/1";
    std::string src = "10.0.0.1";
    ASSERT_TRUE(req.parse({.method = "GET", .url = url, .user_agent = ua, .src = src}))
        << req.error();
    url.assign(url.size(), '#');
    ua.assign(ua.size(), '#');
  }
  EXPECT_EQ(req.host, "example.com");
  EXPECT_EQ(req.path, "/X.crl");
  EXPECT_EQ(req.query, "q");
  EXPECT_EQ(req.user_agent, "Agent/1");
  EXPECT_EQ(req.url, "http://Example.com/X.crl?q");
}

// parse() takes a shortcut for common URLs; on every URL it must agree with the general
// parser field by field (tests/fuzz/fuzz_url.cc checks the same on random bytes).
TEST(RequestParse, ShortcutAgreesWithTheGeneralParser) {
  const char* urls[] = {
      "http://crl.verisign.com/pca3.crl",
      "http://crl.verisign.com",
      "http://crl.verisign.com/",
      "https://a.b/c?d=e",
      "http://a.b/c?d=e#f",
      "http://a.b/c#f",
      "http://a.b/C/D.CRL",
      "http://a.b/c/./d.crl",
      "http://a.b/c/../d.crl",
      "http://a.b/c.d/e.crl",
      "http://a.b/.crl",
      "http://a.b/x;.crl",
      "http://a.b/x%2ecrl",
      "http://a.b/x\\y.crl",
      "http://a.b/x y",
      "http://a.b/x\x7f",
      "http://a.b/x\xc3\xa9.crl",
      "http://a.b/?q=%zz",
      "http://a.b/?q= x",
      "http://a.b/?q=\\;",
      "http://A.B/c",
      "http://a.b./c",
      "http://a..b/c",
      "http://.a.b/c",
      "http://a.b:80/c",
      "http://a.b:8080/c",
      "http://user@a.b/c",
      "http://a.b@c.d/e",
      "http://192.0.2.7/x.crl",
      "http://3221225991/x.crl",
      "http://0xc0.0.2.7/x",
      "http://a.b.0x1f/x",
      "http://a.b.9z/x",
      "http://a.b.z9/x",
      "http://[2001:db8::1]/x.crl",
      "http:///x",
      "http://",
      "http:/a.b/c",
      "HTTP://a.b/c",
      "ftp://a.b/c",
      "http://a_b-c.d/e",
      "http://a.b/c?",
      "http://a.b?c",
      "http://xn--bcher-kva.example/x",
      "http://b\xc3\xbc"
      "cher.example/x",
      "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b/x",
      "http://a.b/0123456789abcdef0123456789abcdef.crl",
      "http://a.b/0123456789abcdef0123456789abcde/.crl",
      "http://a.b/0123456789abcdef0123456789abcdef%41.crl",
      "http://a.b//x",
      "http://a.b/x//",
      "http://a.b/x//y",
      "http://a.b/0123456789abcde//0123456789abcdef.crl",
      "http://a.b/0123456789abcdef//0123456789abcdef.crl",
      "http://a.b/0123456789abcdef0123456789abcdef0//x",
      "http://a.b/0123456789abcdef0123456789abcdef.crl//",
      "http://a.b/0123456789abcdef/0123456789abcdef/0123456789abcdef/",
      "http://a.b/x#y",
      "http://a.b/x?y#z",
      "http://a.b/x;y",
  };
  for (const char* method : {"GET", "CONNECT", "POST"}) {
    for (const char* url : urls) {
      Request fast;
      Request ref;
      const bool a = fast.parse({method, url, "Microsoft-CryptoAPI/10.0", "10.0.0.1"});
      const bool b = ref.parse_reference({method, url, "Microsoft-CryptoAPI/10.0", "10.0.0.1"});
      SCOPED_TRACE(std::string(method) + " " + url);
      ASSERT_EQ(a, b);
      EXPECT_EQ(fast.error(), ref.error());
      if (!a) continue;
      EXPECT_EQ(fast.scheme, ref.scheme);
      EXPECT_EQ(fast.host, ref.host);
      EXPECT_EQ(fast.host_kind, ref.host_kind);
      EXPECT_EQ(fast.host_ip.bytes, ref.host_ip.bytes);
      EXPECT_EQ(fast.port, ref.port);
      EXPECT_EQ(fast.path, ref.path);
      EXPECT_EQ(fast.params, ref.params);
      EXPECT_EQ(fast.query, ref.query);
      EXPECT_EQ(fast.match_path, ref.match_path);
      EXPECT_EQ(fast.match_path_ok, ref.match_path_ok);
      EXPECT_EQ(fast.match_path_why == nullptr, ref.match_path_why == nullptr);
      EXPECT_EQ(fast.url, ref.url);
      EXPECT_EQ(fast.method_bit, ref.method_bit);
      if (fast.host_dots_known) {  // the shortcut's dot mask describes the host it found
        std::uint64_t want = 0;
        for (std::size_t i = 0; i < fast.host.size(); ++i)
          if (fast.host[i] == '.') want |= std::uint64_t{1} << i;
        EXPECT_LT(fast.host.size(), 64u);
        EXPECT_EQ(fast.host_dots, want);
      }
    }
  }
}

// A warm Request swaps recently seen User-Agents back in; the fields must always be the
// current request's, whatever the order.
TEST(RequestParse, RecentUserAgentsComeBackIntact) {
  const std::string uas[] = {"Microsoft-CryptoAPI/10.0",
                             "Mozilla/5.0 (X11; Linux x86_64)",
                             "MSOSIA",
                             "",
                             "curl/7.88.1",
                             "A",
                             "B",
                             "C",
                             "D",
                             "E",
                             "F"};
  Request req;
  unsigned x = 12345;
  for (int i = 0; i < 2000; ++i) {
    x = x * 1103515245u + 12345u;
    const std::string& ua = uas[(x >> 16) % std::size(uas)];
    ASSERT_TRUE(req.parse({"GET", "http://a.b/c", ua, "10.0.0.1"}));
    ASSERT_EQ(req.user_agent, ua);
    std::string lower = ua;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSERT_EQ(req.user_agent_lower, lower);
  }
}

TEST(RequestParse, UserAgentIdsComeBackIntact) {
  const std::string uas[] = {
      "Microsoft-CryptoAPI/10.0", "MSOSIA", "curl/7.88.1", "A", "B", "C", "D", "E", "F", "G"};
  std::uint64_t ids[std::size(uas)] = {};
  std::uint64_t next_id = 1;
  Request req;
  unsigned x = 777;
  for (int i = 0; i < 3000; ++i) {
    x = x * 1103515245u + 12345u;
    const std::size_t k = (x >> 16) % std::size(uas);
    if (ids[k] == 0 || (x >> 8) % 17 == 0) ids[k] = next_id++;  // sometimes re-numbered
    const bool with_id = (x >> 4) % 5 != 0;                     // and sometimes no id at all
    RequestInput in{"GET", "http://a.b/c", uas[k], "10.0.0.1", with_id ? ids[k] : 0};
    ASSERT_TRUE(req.parse(in));
    ASSERT_EQ(req.user_agent, uas[k]);
    std::string lower = uas[k];
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSERT_EQ(req.user_agent_lower, lower);
  }
}

TEST(RequestParse, UserAgentSerialsComeBackIntact) {
  // More distinct User-Agents than parse() keeps lower-cased, in a scrambled order: each
  // parse gives the text as sent, its lower-case form, and a serial that never names two
  // texts (also across Request objects and copies).
  const std::string uas[] = {
      "Microsoft-CryptoAPI/10.0", "MSOSIA", "curl/7.88.1", "A", "B", "C", "D", "E", "F", "G"};
  std::map<std::uint64_t, std::string> text_of;
  Request req, other;
  unsigned x = 777;
  for (int i = 0; i < 3000; ++i) {
    x = x * 1103515245u + 12345u;
    const std::size_t k = (x >> 16) % std::size(uas);
    Request& r = (x >> 8) % 7 == 0 ? other : req;
    ASSERT_TRUE(r.parse(RequestInput{"GET", "http://a.b/c", uas[k], "10.0.0.1"}));
    ASSERT_EQ(r.user_agent, uas[k]);
    std::string lower = uas[k];
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSERT_EQ(r.user_agent_lower, lower);
    const Request copy = r;
    ASSERT_EQ(copy.user_agent_serial, r.user_agent_serial);
    ASSERT_EQ(copy.user_agent_lower, lower);
    auto [it, fresh] = text_of.emplace(r.user_agent_serial, uas[k]);
    ASSERT_EQ(it->second, uas[k]) << "serial " << r.user_agent_serial;
  }
}

TEST(RequestParse, MethodBits) {
  EXPECT_EQ(method_bit("GET"), 1);
  EXPECT_EQ(method_bit("HEAD"), 2);
  EXPECT_EQ(method_bit("POST"), 4);
  EXPECT_EQ(method_bit("CONNECT"), 8);
  EXPECT_EQ(method_bit("get"), 0);
  EXPECT_EQ(method_bit("PROPFIND"), 0);
  EXPECT_EQ(method_bit(""), 0);
  Request req;
  ASSERT_TRUE(req.parse({"PROPFIND", "http://a.b/c", "", ""}));
  EXPECT_EQ(req.method_bit, 0);
}

// path, params, query, match_path and the User-Agent view the Request's own text: a copy
// views its own, and keeps its values when the original is parsed again or destroyed.
TEST(RequestParse, CopiesViewTheirOwnText) {
  for (const char* url :
       {"http://a.b/X.crl?q=1", "http://a.b/%41/b;p=1?q", "http://a.b/%41/b?q",
        "http://a.b/x/./y.crl", "http://crl.example.com/some/longer/path/that/is/not/short.crl?x=y",
        "http://a.b"}) {
    SCOPED_TRACE(url);
    auto original = std::make_unique<Request>();
    ASSERT_TRUE(original->parse(RequestInput{"GET", url, "Microsoft-CryptoAPI/10.0", ""}));
    const std::string path(original->path), params(original->params), query(original->query),
        match(original->match_path);
    const bool match_ok = original->match_path_ok;
    Request copy(*original);
    Request assigned;
    ASSERT_TRUE(assigned.parse(RequestInput{"GET", "http://other.example/zzz", "", ""}));
    assigned = *original;
    for (const char* ua : {"a", "B", "c", "D", "e", "F", "g", "H", "i"})  // every UA slot anew
      ASSERT_TRUE(original->parse(RequestInput{"GET", "http://q.example/OTHER?w", ua, ""}));
    original.reset();
    for (const Request* r : {&copy, &assigned}) {
      EXPECT_EQ(r->path, path);
      EXPECT_EQ(r->params, params);
      EXPECT_EQ(r->query, query);
      EXPECT_EQ(r->match_path, match);
      EXPECT_EQ(r->match_path_ok, match_ok);
      EXPECT_EQ(r->user_agent, "Microsoft-CryptoAPI/10.0");
      EXPECT_EQ(r->user_agent_lower, "microsoft-cryptoapi/10.0");
    }
  }
}

}  // namespace
}  // namespace authbypass
