// Numeric host names ("ends in a number"): the policy loader and the request parser apply
// one rule, so a policy host is refused exactly when a request for it is not a name.
#include "host_name.h"

#include <gtest/gtest.h>

#include <string>

#include "authbypass/policy.h"
#include "authbypass/request.h"

namespace authbypass {
namespace {

struct Label {
  const char* text;
  bool numeric;  // the WHATWG URL "ends in a number" answer for a host ending in it
};

// Last labels: all digits, or 0x/0X and hex digits only (none at all included), are
// numeric; anything else is a name.
constexpr Label kLabels[] = {
    {"1", true},     {"08", true},    {"09", true},   {"0", true},          {"0x", true},
    {"0X", true},    {"0x1f", true},  {"0X1F", true}, {"0xffffffff", true}, {"3221225991", true},
    {"0xg1", false}, {"0x1g", false}, {"1e5", false}, {"0x-1", false},      {"x1", false},
    {"1a", false},   {"0b1", false},  {"0o7", false}, {"com", false},       {"0xcdn", false},
};

bool loader_accepts(const std::string& host) {
  const LoadResult r = load_policy_text(
      "version: 1\nrules:\n  - id: r\n    match:\n      hosts: ['" + host + "']\n", "p.yaml");
  return r.ok();
}

// True iff the parser reads the host of http://HOST/ as a name (not an address, no error).
bool parser_reads_name(const std::string& host) {
  Request req;
  const std::string url = "http://" + host + "/";
  return req.parse(
             RequestInput{.method = "GET", .url = url, .user_agent = {}, .src = "192.0.2.1"}) &&
         req.host_kind == HostKind::kName;
}

TEST(EndsInNumber, LoaderAndParserAgree) {
  for (const Label& l : kLabels) {
    const std::string label = l.text;
    for (const std::string& host :
         {"cdn." + label, "cdn." + label + ".", "a.b." + label, "0x.cdn." + label, label}) {
      SCOPED_TRACE(host);
      EXPECT_EQ(loader_accepts(host), parser_reads_name(host));
      EXPECT_EQ(parser_reads_name(host), !l.numeric);
    }
  }
}

TEST(EndsInNumber, FollowsTheWhatwgChecker) {
  for (const Label& l : kLabels) {
    const std::string label = l.text;
    for (const std::string& host : {label, label + ".", "cdn." + label, "cdn." + label + "."}) {
      SCOPED_TRACE(host);
      EXPECT_EQ(ends_in_number(host), l.numeric);
    }
  }
  EXPECT_FALSE(ends_in_number(""));
  EXPECT_FALSE(ends_in_number("."));
  EXPECT_FALSE(ends_in_number("cdn.."));  // the last label is empty once one dot is dropped
  EXPECT_TRUE(ends_in_number("cdn.0x.1"));
  EXPECT_FALSE(ends_in_number("0x.cdn"));
}

// A numeric label anywhere but last does not make the name numeric.
TEST(EndsInNumber, OnlyTheLastLabelCounts) {
  for (const std::string host : {"0x.cdn", "1.cdn", "0x1f.example", "08.example."}) {
    SCOPED_TRACE(host);
    EXPECT_TRUE(loader_accepts(host));
    EXPECT_TRUE(parser_reads_name(host));
  }
  for (const std::string host : {"cdn.0x.1", "cdn.0x1f.08", "example.0x."}) {
    SCOPED_TRACE(host);
    EXPECT_FALSE(loader_accepts(host));
    EXPECT_FALSE(parser_reads_name(host));
  }
}

}  // namespace
}  // namespace authbypass
