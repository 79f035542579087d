// ICAP wire translation: encapsulated request line and headers into the engine's input.
#include "authbypass/icap_request.h"

#include <gtest/gtest.h>

#include <string>

namespace authbypass::icap {
namespace {

TEST(IcapTranslate, AbsoluteOriginAndConnectForms) {
  auto t = translate({"GET http://crl.verisign.com/pca3.crl HTTP/1.1", std::nullopt,
                      "Microsoft-CryptoAPI/6.1", "10.1.2.3"});
  ASSERT_TRUE(t.ok()) << t.error;
  EXPECT_EQ(t.method, "GET");
  EXPECT_EQ(t.url, "http://crl.verisign.com/pca3.crl");
  EXPECT_EQ(t.user_agent, "Microsoft-CryptoAPI/6.1");
  EXPECT_EQ(t.src, "10.1.2.3");
  t = translate({"GET /pki/x.crl HTTP/1.1\r\n", " crl.example.com ", std::nullopt, std::nullopt});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.url, "http://crl.example.com/pki/x.crl");
  EXPECT_EQ(t.user_agent, "");
  EXPECT_EQ(t.src, "");
  t = translate(
      {"CONNECT login.microsoftonline.com:443 HTTP/1.1", std::nullopt, "MSOIDCRL", "::1"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.url, "login.microsoftonline.com:443");
}

TEST(IcapTranslate, BadInputIsAnError) {
  EXPECT_EQ(translate({"", {}, {}, {}}).error, "malformed encapsulated request line");
  EXPECT_EQ(translate({"GET", {}, {}, {}}).error, "malformed encapsulated request line");
  EXPECT_EQ(translate({"GET  HTTP/1.1", {}, {}, {}}).error, "malformed encapsulated request line");
  EXPECT_EQ(translate({" http://x/ HTTP/1.1", {}, {}, {}}).error,
            "malformed encapsulated request line");
  EXPECT_EQ(translate({"GET /x HTTP/1.1", {}, {}, {}}).error,
            "origin-form request target without a Host header");
  EXPECT_EQ(translate({"GET /x HTTP/1.1", "  ", {}, {}}).error,
            "origin-form request target without a Host header");
  std::string huge = "GET http://a.test/" + std::string(1 << 20, 'a') + " HTTP/1.1";
  auto t = translate({huge, {}, {}, {}});
  EXPECT_TRUE(t.ok());
  EXPECT_LE(t.url.size(), kMaxUrlLength + 1024);  // bounded; the engine refuses it anyway
  Request r;
  EXPECT_FALSE(r.parse(t.input()));
}

TEST(IcapWire, ContentLengthStatusMediaType) {
  EXPECT_EQ(content_length(std::nullopt), -1);
  EXPECT_EQ(content_length("123"), 123);
  EXPECT_EQ(content_length(" 7 "), 7);
  EXPECT_FALSE(content_length(""));
  EXPECT_FALSE(content_length("-1"));
  EXPECT_FALSE(content_length("12a"));
  EXPECT_FALSE(content_length("9999999999999999999"));
  EXPECT_EQ(status_of("HTTP/1.1 200 OK"), 200);
  EXPECT_EQ(status_of("HTTP/1.0 403"), 403);
  EXPECT_EQ(status_of("ICAP/1.0 200 OK"), -1);
  EXPECT_EQ(status_of("HTTP/1.1 2x0"), -1);
}

}  // namespace
}  // namespace authbypass::icap
