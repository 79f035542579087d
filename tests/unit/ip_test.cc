// Tests for IpAddress and Cidr (authbypass/ip.h): strict parsing, canonical text, containment.

#include "authbypass/ip.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace authbypass {
namespace {

IpAddress MustParseIp(std::string_view text) {
  auto ip = IpAddress::parse(text);
  EXPECT_TRUE(ip.has_value()) << "IpAddress::parse(\"" << text << "\") failed";
  return ip.value_or(IpAddress{});
}

Cidr MustParseCidr(std::string_view text) {
  std::string error;
  auto cidr = Cidr::parse(text, &error);
  EXPECT_TRUE(cidr.has_value()) << "Cidr::parse(\"" << text << "\") failed: " << error;
  return cidr.value_or(Cidr{});
}

// ---------------------------------------------------------------------------------------------
// IpAddress::parse, IPv4

TEST(IpAddressParseV4, AcceptsDottedQuad) {
  const auto ip = IpAddress::parse("192.0.2.7");
  ASSERT_TRUE(ip.has_value());
  EXPECT_FALSE(ip->v6);
  const std::array<std::uint8_t, 16> expected{192, 0, 2, 7};  // rest zero
  EXPECT_EQ(ip->bytes, expected);
}

TEST(IpAddressParseV4, AcceptsExtremes) {
  const auto zero = IpAddress::parse("0.0.0.0");
  ASSERT_TRUE(zero.has_value());
  EXPECT_FALSE(zero->v6);
  EXPECT_EQ(zero->bytes, (std::array<std::uint8_t, 16>{}));

  const auto ones = IpAddress::parse("255.255.255.255");
  ASSERT_TRUE(ones.has_value());
  EXPECT_FALSE(ones->v6);
  const std::array<std::uint8_t, 16> expected{255, 255, 255, 255};
  EXPECT_EQ(ones->bytes, expected);
}

TEST(IpAddressParseV4, SingleZeroOctetsAreNotLeadingZeros) {
  EXPECT_TRUE(IpAddress::parse("10.0.0.1").has_value());
  EXPECT_TRUE(IpAddress::parse("100.64.0.10").has_value());
}

class IpAddressParseRejects : public ::testing::TestWithParam<std::string_view> {};

// Against an independent reference: a strict dotted quad is exactly a text that inet_pton
// accepts and that inet_ntop writes back unchanged (no leading zeros, no other forms). Short
// random strings over digits and dots, so that near misses are common.
TEST(IpAddressParseV4, AgreesWithInetPtonRoundTrip) {
  unsigned x = 2463534242u;
  const char alphabet[] = "0123456789.....12925a:";
  int accepted = 0;
  for (int i = 0; i < 300000; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const std::size_t len = 5 + x % 13;
    std::string s;
    unsigned y = x;
    auto next = [&y] {
      y = y * 1103515245u + 12345u;
      return y >> 16;
    };
    if (i % 2 == 0) {  // random bytes
      for (std::size_t k = 0; k < len; ++k) s += alphabet[next() % (sizeof alphabet - 1)];
    } else {  // four octets up to 299, some with a leading zero, some with a byte changed
      for (int k = 0; k < 4; ++k) {
        if (k > 0) s += '.';
        if (next() % 16 == 0) s += '0';
        s += std::to_string(next() % 300);
      }
      if (next() % 4 == 0) s[next() % s.size()] = alphabet[next() % (sizeof alphabet - 1)];
    }
    in_addr a{};
    char back[INET_ADDRSTRLEN] = {};
    const bool ref = inet_pton(AF_INET, s.c_str(), &a) == 1 &&
                     inet_ntop(AF_INET, &a, back, sizeof back) != nullptr && s == back;
    const auto ip = IpAddress::parse(s);
    const bool got = ip.has_value() && !ip->v6;
    ASSERT_EQ(got, ref) << "'" << s << "'";
    if (got) {
      ++accepted;
      ASSERT_EQ(std::memcmp(ip->bytes.data(), &a, 4), 0) << s;
      for (std::size_t k = 4; k < 16; ++k) ASSERT_EQ(ip->bytes[k], 0) << s;
    }
  }
  EXPECT_GT(accepted, 1000);  // the generator does reach valid addresses
}

TEST_P(IpAddressParseRejects, ReturnsNullopt) {
  EXPECT_FALSE(IpAddress::parse(GetParam()).has_value()) << "input: \"" << GetParam() << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    IpAddressV4, IpAddressParseRejects,
    ::testing::Values(
        // Leading zeros (octal in inet_aton).
        "192.0.2.07", "010.0.0.1", "0300.0.2.7", "00.0.0.0", "1.2.3.00",
        // Wrong number of parts.
        "192.0.2", "192.0", "3221225991", "1.2.3.4.5", "1.2.3.", ".1.2.3", "1..2.3",
        // Out of range.
        "256.0.0.1", "1.2.3.256", "999.1.1.1", "1.2.3.4294967297",
        // Other numeric forms.
        "0xc0.0.2.7", "0xC0000207", "+1.2.3.4", "-1.2.3.4", "1.2.3.-4", "1.2.3.4e0",
        // Junk and whitespace.
        "", ".", "...", "a.b.c.d", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "1.2 .3.4", "1.2.3.4/32",
        "1.2.3.4:80", "[1.2.3.4]", std::string_view("1.2.3.4\0", 8)));

INSTANTIATE_TEST_SUITE_P(IpAddressV6, IpAddressParseRejects,
                         ::testing::Values(
                             // Brackets and zone ids are not part of the address text.
                             "[::1]", "[2001:db8::1]", "fe80::1%eth0", "fe80::1%25eth0",
                             // Malformed.
                             ":", ":::", "1::2::3", "2001:db8:::1", "12345::1", "2001:db8::g",
                             "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", ":1:2:3:4:5:6:7",
                             "1:2:3:4:5:6:7:", "2001:db8::1/64", " ::1", "::1 ", "::ffff:256.0.0.1",
                             "::ffff:1.2.3", "2001:db8::1.2.3.4.5"));

// ---------------------------------------------------------------------------------------------
// IpAddress::parse, IPv6

TEST(IpAddressParseV6, AcceptsCompressedForm) {
  const auto ip = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->v6);
  const std::array<std::uint8_t, 16> expected{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                              0,    0,    0,    0,    0, 0, 0, 1};
  EXPECT_EQ(ip->bytes, expected);
}

TEST(IpAddressParseV6, AllTextFormsOfOneAddressAreEqual) {
  const IpAddress canonical = MustParseIp("2001:db8::1");
  EXPECT_EQ(MustParseIp("2001:0db8:0000:0000:0000:0000:0000:0001"), canonical);
  EXPECT_EQ(MustParseIp("2001:db8:0:0:0:0:0:1"), canonical);
  EXPECT_EQ(MustParseIp("2001:DB8::1"), canonical);
  EXPECT_EQ(MustParseIp("2001:db8:0::0:1"), canonical);
}

TEST(IpAddressParseV6, AcceptsUnspecifiedAndLoopback) {
  const auto any = IpAddress::parse("::");
  ASSERT_TRUE(any.has_value());
  EXPECT_TRUE(any->v6);
  EXPECT_EQ(any->bytes, (std::array<std::uint8_t, 16>{}));

  const auto loopback = IpAddress::parse("::1");
  ASSERT_TRUE(loopback.has_value());
  EXPECT_TRUE(loopback->v6);
  std::array<std::uint8_t, 16> expected{};
  expected[15] = 1;
  EXPECT_EQ(loopback->bytes, expected);
}

TEST(IpAddressParseV6, AcceptsFullAndTrailingCompression) {
  const auto full = IpAddress::parse("1:2:3:4:5:6:7:8");
  ASSERT_TRUE(full.has_value());
  EXPECT_TRUE(full->v6);
  EXPECT_EQ(full->bytes[1], 1);
  EXPECT_EQ(full->bytes[15], 8);

  const auto trailing = IpAddress::parse("fe80::");
  ASSERT_TRUE(trailing.has_value());
  EXPECT_EQ(trailing->bytes[0], 0xfe);
  EXPECT_EQ(trailing->bytes[1], 0x80);
  EXPECT_EQ(trailing->bytes[15], 0);
}

TEST(IpAddressParseV6, AcceptsEmbeddedIpv4) {
  const auto mapped = IpAddress::parse("::ffff:192.0.2.7");
  ASSERT_TRUE(mapped.has_value());
  EXPECT_TRUE(mapped->v6);  // still an IPv6 address
  const std::array<std::uint8_t, 16> expected{0, 0, 0,    0,    0,   0, 0, 0,
                                              0, 0, 0xff, 0xff, 192, 0, 2, 7};
  EXPECT_EQ(mapped->bytes, expected);
}

TEST(IpAddressParseV6, FamiliesDifferEvenForSameBytes) {
  // 0.0.0.0 and :: have identical byte arrays; the family keeps them apart.
  EXPECT_NE(MustParseIp("0.0.0.0"), MustParseIp("::"));
}

// ---------------------------------------------------------------------------------------------
// IpAddress::to_string

TEST(IpAddressToString, Ipv4IsDottedQuad) {
  EXPECT_EQ(MustParseIp("192.0.2.7").to_string(), "192.0.2.7");
  EXPECT_EQ(MustParseIp("0.0.0.0").to_string(), "0.0.0.0");
  EXPECT_EQ(MustParseIp("255.255.255.255").to_string(), "255.255.255.255");
}

TEST(IpAddressToString, Ipv6IsRfc5952) {
  EXPECT_EQ(MustParseIp("2001:0DB8:0000:0000:0000:0000:0000:0001").to_string(), "2001:db8::1");
  EXPECT_EQ(MustParseIp("::").to_string(), "::");
  EXPECT_EQ(MustParseIp("0:0:0:0:0:0:0:1").to_string(), "::1");
  EXPECT_EQ(MustParseIp("fe80:0:0:0:0:0:0:0").to_string(), "fe80::");
  // A single zero group is not compressed (RFC 5952 4.2.2).
  EXPECT_EQ(MustParseIp("2001:db8:0:1:1:1:1:1").to_string(), "2001:db8:0:1:1:1:1:1");
  // The longest run is compressed (RFC 5952 4.2.3)...
  EXPECT_EQ(MustParseIp("2001:0:0:1:0:0:0:1").to_string(), "2001:0:0:1::1");
  // ... and on a tie, the first.
  EXPECT_EQ(MustParseIp("2001:db8:0:0:1:0:0:1").to_string(), "2001:db8::1:0:0:1");
  // Leading zeros within a group dropped, lower-case hex (RFC 5952 4.1, 4.3).
  EXPECT_EQ(MustParseIp("2001:DB8:00AB:0CD0:1:2:3:4").to_string(), "2001:db8:ab:cd0:1:2:3:4");
}

TEST(IpAddressToString, RoundTrips) {
  for (std::string_view text :
       {"192.0.2.7", "10.0.0.1", "2001:db8::1", "::1", "::", "2001:db8:0:1:1:1:1:1", "fe80::1:2"}) {
    const IpAddress ip = MustParseIp(text);
    EXPECT_EQ(ip.to_string(), text);
    EXPECT_EQ(MustParseIp(ip.to_string()), ip) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// Cidr::parse

TEST(CidrParse, AcceptsBlock) {
  const Cidr cidr = MustParseCidr("13.107.0.0/16");
  EXPECT_EQ(cidr.base, MustParseIp("13.107.0.0"));
  EXPECT_EQ(cidr.prefix, 16);
  EXPECT_EQ(cidr.to_string(), "13.107.0.0/16");
}

TEST(CidrParse, BareAddressIsHostRoute) {
  const Cidr v4 = MustParseCidr("192.0.2.7");
  EXPECT_EQ(v4.base, MustParseIp("192.0.2.7"));
  EXPECT_EQ(v4.prefix, 32);

  const Cidr v6 = MustParseCidr("2001:db8::1");
  EXPECT_EQ(v6.base, MustParseIp("2001:db8::1"));
  EXPECT_EQ(v6.prefix, 128);
}

TEST(CidrParse, AcceptsFullLengthPrefixes) {
  EXPECT_EQ(MustParseCidr("192.0.2.7/32").prefix, 32);
  EXPECT_EQ(MustParseCidr("2001:db8::1/128").prefix, 128);
}

TEST(CidrParse, AcceptsZeroPrefix) {
  const Cidr v4 = MustParseCidr("0.0.0.0/0");
  EXPECT_EQ(v4.prefix, 0);
  EXPECT_FALSE(v4.base.v6);

  const Cidr v6 = MustParseCidr("::/0");
  EXPECT_EQ(v6.prefix, 0);
  EXPECT_TRUE(v6.base.v6);
}

TEST(CidrParse, AcceptsIpv6Block) {
  const Cidr cidr = MustParseCidr("2001:DB8::/32");
  EXPECT_TRUE(cidr.base.v6);
  EXPECT_EQ(cidr.prefix, 32);
  EXPECT_EQ(cidr.base, MustParseIp("2001:db8::"));
  EXPECT_EQ(cidr.to_string(), "2001:db8::/32");
}

TEST(CidrParse, HostBitsSetIsAnErrorWithMessage) {
  for (std::string_view text :
       {"10.1.2.3/8", "13.107.0.1/16", "192.0.2.7/24", "0.0.0.1/0", "192.0.2.1/31",
        "2001:db8::1/32", "2001:db8::/16", "::1/0", "2001:db8::1/127"}) {
    std::string error;
    EXPECT_FALSE(Cidr::parse(text, &error).has_value()) << text;
    EXPECT_FALSE(error.empty()) << "no message for \"" << text << "\"";
  }
}

TEST(CidrParse, NullErrorPointerIsAllowed) {
  EXPECT_FALSE(Cidr::parse("10.1.2.3/8").has_value());
  EXPECT_FALSE(Cidr::parse("junk", nullptr).has_value());
  EXPECT_TRUE(Cidr::parse("10.0.0.0/8", nullptr).has_value());
}

TEST(CidrParse, RejectsMalformed) {
  for (std::string_view text : {"",
                                "/8",
                                "10.0.0.0/",
                                "10.0.0.0/33",
                                "10.0.0.0/-1",
                                "10.0.0.0/+8",
                                "10.0.0.0/8/8",
                                "10.0.0.0/a",
                                "10.0.0.0/ 8",
                                "10.0.0.0 /8",
                                "10.0.0.0/8 ",
                                "10.0.0/8",
                                "010.0.0.0/8",
                                "10.0.0.0/4294967304",
                                "::/129",
                                "2001:db8::/1000",
                                "[2001:db8::]/32",
                                "example.com",
                                "example.com/24",
                                "0xa.0.0.0/8"}) {
    std::string error;
    EXPECT_FALSE(Cidr::parse(text, &error).has_value()) << text;
    EXPECT_FALSE(error.empty()) << "no message for \"" << text << "\"";
  }
}

// ---------------------------------------------------------------------------------------------
// Cidr::contains

TEST(CidrContains, Ipv4Boundaries) {
  const Cidr cidr = MustParseCidr("10.0.0.0/8");
  EXPECT_TRUE(cidr.contains(MustParseIp("10.0.0.0")));
  EXPECT_TRUE(cidr.contains(MustParseIp("10.1.2.3")));
  EXPECT_TRUE(cidr.contains(MustParseIp("10.255.255.255")));
  EXPECT_FALSE(cidr.contains(MustParseIp("9.255.255.255")));
  EXPECT_FALSE(cidr.contains(MustParseIp("11.0.0.0")));
}

TEST(CidrContains, NonOctetAlignedPrefix) {
  const Cidr cidr = MustParseCidr("192.0.2.64/26");  // .64 - .127
  EXPECT_FALSE(cidr.contains(MustParseIp("192.0.2.63")));
  EXPECT_TRUE(cidr.contains(MustParseIp("192.0.2.64")));
  EXPECT_TRUE(cidr.contains(MustParseIp("192.0.2.127")));
  EXPECT_FALSE(cidr.contains(MustParseIp("192.0.2.128")));

  const Cidr v6 = MustParseCidr("2001:db8:8000::/33");
  EXPECT_TRUE(v6.contains(MustParseIp("2001:db8:8000::1")));
  EXPECT_TRUE(v6.contains(MustParseIp("2001:db8:ffff:ffff::")));
  EXPECT_FALSE(v6.contains(MustParseIp("2001:db8:7fff:ffff:ffff:ffff:ffff:ffff")));
}

TEST(CidrContains, HostRouteContainsOnlyItself) {
  const Cidr cidr = MustParseCidr("192.0.2.7");
  EXPECT_TRUE(cidr.contains(MustParseIp("192.0.2.7")));
  EXPECT_FALSE(cidr.contains(MustParseIp("192.0.2.6")));
  EXPECT_FALSE(cidr.contains(MustParseIp("192.0.2.8")));

  const Cidr v6 = MustParseCidr("2001:db8::1");
  EXPECT_TRUE(v6.contains(MustParseIp("2001:db8::1")));
  EXPECT_FALSE(v6.contains(MustParseIp("2001:db8::2")));
}

TEST(CidrContains, ZeroPrefixContainsWholeFamily) {
  const Cidr v4 = MustParseCidr("0.0.0.0/0");
  EXPECT_TRUE(v4.contains(MustParseIp("0.0.0.0")));
  EXPECT_TRUE(v4.contains(MustParseIp("192.0.2.7")));
  EXPECT_TRUE(v4.contains(MustParseIp("255.255.255.255")));

  const Cidr v6 = MustParseCidr("::/0");
  EXPECT_TRUE(v6.contains(MustParseIp("::")));
  EXPECT_TRUE(v6.contains(MustParseIp("2001:db8::1")));
  EXPECT_TRUE(v6.contains(MustParseIp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
}

TEST(CidrContains, FamilyMismatchNeverContains) {
  EXPECT_FALSE(MustParseCidr("0.0.0.0/0").contains(MustParseIp("::")));
  EXPECT_FALSE(MustParseCidr("0.0.0.0/0").contains(MustParseIp("2001:db8::1")));
  EXPECT_FALSE(MustParseCidr("::/0").contains(MustParseIp("0.0.0.0")));
  EXPECT_FALSE(MustParseCidr("::/0").contains(MustParseIp("192.0.2.7")));
  // Same leading bytes, different family.
  EXPECT_FALSE(MustParseCidr("::/96").contains(MustParseIp("192.0.2.7")));
  EXPECT_FALSE(MustParseCidr("0.0.0.0/8").contains(MustParseIp("::1")));
  // An IPv4-mapped IPv6 address is IPv6.
  EXPECT_FALSE(MustParseCidr("192.0.2.0/24").contains(MustParseIp("::ffff:192.0.2.7")));
  EXPECT_FALSE(MustParseCidr("::ffff:192.0.2.7").contains(MustParseIp("192.0.2.7")));
}

TEST(CidrContains, Ipv6Block) {
  const Cidr cidr = MustParseCidr("2001:db8::/32");
  EXPECT_TRUE(cidr.contains(MustParseIp("2001:db8::")));
  EXPECT_TRUE(cidr.contains(MustParseIp("2001:db8::1")));
  EXPECT_TRUE(cidr.contains(MustParseIp("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(cidr.contains(MustParseIp("2001:db9::")));
  EXPECT_FALSE(cidr.contains(MustParseIp("2001:db7:ffff::1")));
}

// ---------------------------------------------------------------------------------------------
// Cidr::to_string

TEST(CidrToString, RoundTrips) {
  for (std::string_view text :
       {"10.0.0.0/8", "192.0.2.64/26", "0.0.0.0/0", "2001:db8::/32", "::/0", "fe80::/10"}) {
    const Cidr cidr = MustParseCidr(text);
    EXPECT_EQ(cidr.to_string(), text);
    const Cidr again = MustParseCidr(cidr.to_string());
    EXPECT_EQ(again.base, cidr.base);
    EXPECT_EQ(again.prefix, cidr.prefix);
  }
}

TEST(CidrToString, HostRouteReparsesToSameBlock) {
  for (std::string_view text : {"192.0.2.7", "2001:db8::1"}) {
    const Cidr cidr = MustParseCidr(text);
    const Cidr again = MustParseCidr(cidr.to_string());
    EXPECT_EQ(again.base, cidr.base) << cidr.to_string();
    EXPECT_EQ(again.prefix, cidr.prefix) << cidr.to_string();
  }
}

}  // namespace
}  // namespace authbypass
