// The host index (white-box): same answers as the per-rule check, ordered, de-duplicated.
#include "host_matcher.h"

#include <gtest/gtest.h>

namespace authbypass {
namespace {

HostPattern pat(std::string_view text) {
  HostPattern p;
  p.text = text;
  if (auto c = Cidr::parse(text)) {
    p.kind = HostPattern::Kind::kCidr;
    p.cidr = *c;
  } else if (text.starts_with(".")) {
    p.kind = HostPattern::Kind::kSuffix;
    p.name = text.substr(1);
  } else {
    p.name = text;
  }
  return p;
}

std::vector<std::uint32_t> lookup(const HostIndex& idx, std::string_view url) {
  Request req;
  EXPECT_TRUE(req.parse(RequestInput{"GET", url, "", ""})) << req.error();
  std::uint32_t out[16];
  std::size_t n = idx.lookup(req, out, 16);
  if (n == SIZE_MAX) return {999};
  return {out, out + n};
}

TEST(HostIndex, NamesSuffixesAndCidrs) {
  HostIndex idx;
  idx.add(pat("crl.example.com"), 0);
  idx.add(pat(".example.com"), 1);
  idx.add(pat(".com"), 2);
  idx.add(pat("192.0.2.0/24"), 3);
  idx.add(pat("192.0.2.7"), 4);
  idx.add(pat("2001:db8::/32"), 5);
  idx.add(pat(".example.com"), 6);
  idx.add(pat("example.com"), 6);  // same rule twice: reported once
  idx.finish();
  using V = std::vector<std::uint32_t>;
  EXPECT_EQ(lookup(idx, "http://crl.example.com/"), (V{0, 1, 2, 6}));
  EXPECT_EQ(lookup(idx, "http://example.com/"), (V{1, 2, 6}));
  EXPECT_EQ(lookup(idx, "http://a.b.example.com/"), (V{1, 2, 6}));
  EXPECT_EQ(lookup(idx, "http://evilexample.com/"), (V{2}));
  EXPECT_EQ(lookup(idx, "http://example.com.evil.test/"), (V{}));
  EXPECT_EQ(lookup(idx, "http://192.0.2.7/"), (V{3, 4}));
  EXPECT_EQ(lookup(idx, "http://192.0.2.8/"), (V{3}));
  EXPECT_EQ(lookup(idx, "http://192.0.3.7/"), (V{}));
  EXPECT_EQ(lookup(idx, "http://[2001:db8::1]/"), (V{5}));
  EXPECT_EQ(lookup(idx, "http://[2001:db9::1]/"), (V{}));
}

// The parser's dot mask (host_dots) and the index's own scan of the name find the same
// parent domains.
TEST(HostIndex, DotMaskAndScanAgree) {
  HostIndex idx;
  idx.add(pat(".example.com"), 0);
  idx.add(pat(".com"), 1);
  idx.add(pat(".b.example.com"), 2);
  idx.add(pat("a.b.example.com"), 3);
  idx.add(pat(".x.y.z.w.v.u.t.s.r"), 4);
  idx.finish();
  for (const char* url :
       {"http://a.b.example.com/x", "http://b.example.com/", "http://example.com/", "http://com/x",
        "http://q.x.y.z.w.v.u.t.s.r/x", "http://evil-example.com/",
        "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com/x"}) {
    SCOPED_TRACE(url);
    Request req;
    ASSERT_TRUE(req.parse(RequestInput{"GET", url, "", ""}));
    std::uint64_t want = 0;
    for (std::size_t i = 0; i < req.host.size() && i < 64; ++i)
      if (req.host[i] == '.') want |= std::uint64_t{1} << i;
    if (req.host_dots_known) {
      EXPECT_EQ(req.host_dots, want);
    }
    std::uint32_t a[16];
    std::uint32_t b[16];
    const std::size_t na = idx.lookup(req, a, 16);
    req.host_dots_known = false;
    const std::size_t nb = idx.lookup(req, b, 16);
    ASSERT_EQ(na, nb);
    for (std::size_t i = 0; i < na; ++i) EXPECT_EQ(a[i], b[i]);
  }
}

TEST(HostIndex, OverflowIsReported) {
  HostIndex idx;
  for (std::uint32_t i = 0; i < 20; ++i) idx.add(pat(".example.com"), i);
  idx.finish();
  EXPECT_EQ(lookup(idx, "http://a.example.com/"), (std::vector<std::uint32_t>{999}));
}

// Without a one-label suffix entry the index first checks a host's last two labels; it
// must still find every entry that HostPattern::matches() accepts, and nothing else.
TEST(HostIndex, LastTwoLabelFilterKeepsEveryMatch) {
  const std::vector<std::string> texts = {
      "crl.example.com", ".example.com", ".o.lencr.org", "lencr.org",   "localhost",
      ".b.c.d.e",        "x.y",          ".net.example", "192.0.2.0/24"};
  HostIndex idx;
  std::vector<HostPattern> pats;
  for (std::uint32_t i = 0; i < texts.size(); ++i) {
    pats.push_back(pat(texts[i]));
    idx.add(pats.back(), i);
  }
  idx.finish();
  for (const char* host : {"crl.example.com",
                           "example.com",
                           "a.crl.example.com",
                           "evilexample.com",
                           "com",
                           "o.lencr.org",
                           "r3.o.lencr.org",
                           "lencr.org",
                           "x.lencr.org",
                           "lencr.org.evil",
                           "localhost",
                           "a.localhost",
                           "localhost.com",
                           "b.c.d.e",
                           "a.b.c.d.e",
                           "c.d.e",
                           "d.e",
                           "x.y",
                           "w.x.y",
                           "y",
                           "net.example",
                           "a.net.example",
                           "example",
                           "192.0.2.9",
                           "shop1314.de",
                           "static.video42.com",
                           "a-b.c_d.example.com"}) {
    SCOPED_TRACE(host);
    Request req;
    ASSERT_TRUE(req.parse(RequestInput{"GET", std::string("http://") + host + "/", "", ""}));
    std::vector<std::uint32_t> want;
    for (std::uint32_t i = 0; i < pats.size(); ++i)
      if (pats[i].matches(req)) want.push_back(i);
    std::uint32_t out[16];
    const std::size_t n = idx.lookup(req, out, 16);
    ASSERT_NE(n, SIZE_MAX);
    EXPECT_EQ(std::vector<std::uint32_t>(out, out + n), want);
    req.host_dots_known = false;  // the index's own scan of the name
    const std::size_t m = idx.lookup(req, out, 16);
    ASSERT_NE(m, SIZE_MAX);
    EXPECT_EQ(std::vector<std::uint32_t>(out, out + m), want);
  }
}

}  // namespace
}  // namespace authbypass
