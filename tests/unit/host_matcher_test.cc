// The host index (white-box): same answers as the per-rule check, ordered, de-duplicated.
#include <gtest/gtest.h>

#include "host_matcher.h"

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
  for (const char* url : {"http://a.b.example.com/x", "http://b.example.com/", "http://example.com/",
                          "http://com/x", "http://q.x.y.z.w.v.u.t.s.r/x", "http://evil-example.com/",
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

}  // namespace
}  // namespace authbypass
