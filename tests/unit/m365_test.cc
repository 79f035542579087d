// Tests for the Microsoft 365 endpoint-list support (authbypass/m365.h): parsing the web
// service's documents, import into a policy (round trip through the loader and the
// decision), CIDR aggregation, firewall lists, diffs and /changes, and every kind of bad
// input. Data: tests/data/m365/ (realistic excerpts of the worldwide list and broken files).

#include "authbypass/m365.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/policy.h"
#include "authbypass/policy_check.h"
#include "authbypass/request.h"
#include "cidr_set.h"

namespace authbypass::m365 {
namespace {

const std::string kData = std::string(AUTHBYPASS_SOURCE_DIR) + "/tests/data/m365/";
const std::string kNew = kData + "endpoints-2024053100.json";
const std::string kOld = kData + "endpoints-2024043000.json";

Date Day(int y, unsigned m, unsigned d) {
  return std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(m) / std::chrono::day(d));
}
const Date kToday = Day(2026, 6, 1);

EndpointList MustLoad(const std::string& path) {
  EndpointsResult r = load_endpoints_file(path);
  EXPECT_TRUE(r.ok()) << path << ": " << (r.errors.empty() ? "" : r.errors.front());
  return r.list.value_or(EndpointList{});
}

// All errors of a file that must not load, joined.
std::string LoadErrors(const std::string& file) {
  EndpointsResult r = load_endpoints_file(kData + file);
  EXPECT_FALSE(r.ok()) << file << " loaded";
  std::string all;
  for (const auto& e : r.errors) all += e + "\n";
  return all;
}

std::string ParseErrors(std::string_view text) {
  EndpointsResult r = parse_endpoints(text, "t.json");
  EXPECT_FALSE(r.ok()) << text;
  std::string all;
  for (const auto& e : r.errors) all += e + "\n";
  return all;
}

Cidr C(std::string_view text) {
  std::string err;
  auto c = Cidr::parse(text, &err);
  EXPECT_TRUE(c.has_value()) << text << ": " << err;
  return c.value_or(Cidr{});
}

std::vector<std::string> Texts(const std::vector<Cidr>& v) {
  std::vector<std::string> out;
  for (const auto& c : v) out.push_back(c.to_string());
  return out;
}

std::vector<std::string> Agg(std::initializer_list<std::string_view> in) {
  std::vector<Cidr> blocks;
  for (auto t : in) blocks.push_back(C(t));
  return Texts(aggregate_cidrs(blocks));
}

using Strings = std::vector<std::string>;

ImportOptions Opts() {
  ImportOptions o;
  o.version = "2024053100";
  o.owner = "secops@example.com";
  o.ticket = "SEC-1010";
  o.today = kToday;
  return o;
}

std::shared_ptr<const Policy> MustLoadPolicy(const std::string& text) {
  LoadResult r = load_policy_text(text, "m365.yaml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front()) << "\n" << text;
  return r.policy;
}

struct Req {
  std::string method;
  std::string url;
};

// The deciding rule's id, or "" for authenticate.
std::string Decide(const Policy& p, const Req& q) {
  Request req;
  req.parse(RequestInput{q.method, q.url, "Microsoft-CryptoAPI/10.0", "10.1.2.3"});
  EXPECT_TRUE(req.ok()) << q.url << ": " << req.error();
  Decision d = p.decide(req, kToday);
  return d.bypass() ? d.rule->id : "";
}

bool HasNote(const ImportResult& r, std::string_view needle) {
  return std::any_of(r.notes.begin(), r.notes.end(),
                     [&](const std::string& n) { return n.find(needle) != std::string::npos; });
}

// ---------------------------------------------------------------------------------------
// Parsing the endpoint list

TEST(M365Parse, RealisticListLoads) {
  EndpointList l = MustLoad(kNew);
  EXPECT_EQ(l.sets.size(), 16u);
  EXPECT_EQ(l.sha256.size(), 64u);
  const EndpointSet* s = l.find(84);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->service_area, "Common");
  EXPECT_EQ(s->service_area_display_name, "Microsoft 365 Common and Office Online");
  EXPECT_EQ(s->category, "Default");
  EXPECT_TRUE(s->required);
  EXPECT_FALSE(s->express_route);
  EXPECT_EQ(s->tcp_ports_text, "80,443");
  ASSERT_EQ(s->tcp_ports.size(), 2u);
  EXPECT_EQ(s->tcp_ports[0].first, 80);
  EXPECT_EQ(s->tcp_ports[1].first, 443);
  EXPECT_TRUE(s->ips.empty());
  EXPECT_NE(std::find(s->urls.begin(), s->urls.end(), "crl.microsoft.com"), s->urls.end());

  const EndpointSet* skype = l.find(11);
  ASSERT_NE(skype, nullptr);
  EXPECT_TRUE(skype->urls.empty());
  EXPECT_EQ(skype->udp_ports.size(), 4u);
  EXPECT_EQ(Texts(skype->ips),
            (Strings{"13.107.64.0/18", "52.112.0.0/14", "52.122.0.0/15", "2603:1063::/38"}));
  EXPECT_EQ(l.find(999), nullptr);
}

TEST(M365Parse, UnknownKeysAreIgnoredAndUrlsLowerCased) {
  auto r = parse_endpoints(
      R"([{"id": 1, "serviceArea": "Exchange", "category": "Optimize", "required": true,
           "expressRoute": true, "urls": ["Outlook.Office.COM", "outlook.office.com"],
           "newFieldFromMicrosoft": {"x": [1, 2]}}])",
      "t.json");
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(r.list->sets[0].urls, Strings{"outlook.office.com"});
}

TEST(M365Parse, BadJsonIsAClearError) {
  std::string e = LoadErrors("bad-json-truncated.json");
  EXPECT_NE(e.find("bad-json-truncated.json: invalid JSON: parse error at line 6"), std::string::npos) << e;
  e = LoadErrors("bad-json-trailing-comma.json");
  EXPECT_NE(e.find("invalid JSON: parse error at line 3, column 33"), std::string::npos) << e;
  e = LoadErrors("empty.json");
  EXPECT_NE(e.find("empty.json: empty file"), std::string::npos) << e;
  e = ParseErrors("[{\"id\": 1,}]");
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  e = ParseErrors(std::string("[\"\xff\xfe\"]"));
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  e = ParseErrors("[] []");
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
}

TEST(M365Parse, MissingFieldsAreErrorsEachNamed) {
  std::string e = LoadErrors("missing-fields.json");
  EXPECT_NE(e.find("record 1 (id 84): missing field 'serviceArea'"), std::string::npos) << e;
  EXPECT_NE(e.find("record 1 (id 84): missing field 'category'"), std::string::npos) << e;
  EXPECT_NE(e.find("record 2: missing field 'id'"), std::string::npos) << e;
  EXPECT_NE(e.find("record 2: missing field 'required'"), std::string::npos) << e;
}

TEST(M365Parse, WrongTypesAreErrors) {
  std::string e = LoadErrors("wrong-types.json");
  EXPECT_NE(e.find("'id' must be a whole number, not a string"), std::string::npos) << e;
  EXPECT_NE(e.find("'expressRoute' must be true or false, not a string"), std::string::npos) << e;
  EXPECT_NE(e.find("'urls' must be a list of strings, not a string"), std::string::npos) << e;
  EXPECT_NE(e.find("'tcpPorts' must be a string, not a number"), std::string::npos) << e;
  e = ParseErrors(R"([{"id": -3, "serviceArea": "A", "category": "Allow", "required": true, "expressRoute": true}])");
  EXPECT_NE(e.find("'id' must not be negative"), std::string::npos) << e;
  e = ParseErrors(R"([{"id": 1.5, "serviceArea": "A", "category": "Allow", "required": true, "expressRoute": true}])");
  EXPECT_NE(e.find("'id' must be a whole number, not '1.5'"), std::string::npos) << e;
  e = ParseErrors(R"([{"id": 1, "serviceArea": "", "category": "Allow", "required": true, "expressRoute": true}])");
  EXPECT_NE(e.find("'serviceArea' is empty"), std::string::npos) << e;
  e = ParseErrors(R"([{"id": 1, "serviceArea": "A", "category": "Allow", "required": true, "expressRoute": true, "urls": ["ok.example.com", 7, "two words"]}])");
  EXPECT_NE(e.find("'urls' entry 2 must be a string, not a number"), std::string::npos) << e;
  EXPECT_NE(e.find("urls entry 'two words' is not a host name pattern"), std::string::npos) << e;
  e = ParseErrors(R"([42])");
  EXPECT_NE(e.find("record 1: must be an object (an endpoint set), not a number"), std::string::npos) << e;
}

TEST(M365Parse, AbsurdAndBadCidrsAreErrors) {
  std::string e = LoadErrors("bad-cidr-prefix.json");
  EXPECT_NE(e.find("record 1 (id 11): 'ips' entry '1.2.3.4/33': bad prefix length"), std::string::npos) << e;
  EXPECT_NE(e.find("'2603:1063::/129': bad prefix length"), std::string::npos) << e;
  e = LoadErrors("bad-cidr-hostbits.json");
  EXPECT_NE(e.find("'52.112.0.1/14' has bits set past the /14 prefix (did you mean 52.112.0.0/14?)"),
            std::string::npos) << e;
  e = LoadErrors("absurd-cidrs.json");
  EXPECT_NE(e.find("'0.0.0.0/0': a /0 block is absurdly wide"), std::string::npos) << e;
  EXPECT_NE(e.find("'10.0.0.0/8': overlaps private address space 10.0.0.0/8"), std::string::npos) << e;
  EXPECT_NE(e.find("'::/0': a /0 block is absurdly wide"), std::string::npos) << e;
  EXPECT_NE(e.find("'fe80::/64': overlaps link-local"), std::string::npos) << e;
  EXPECT_NE(e.find("'300.1.2.3' is not an IP address"), std::string::npos) << e;
  EXPECT_NE(e.find("'52.96.0.0/-1': bad prefix length"), std::string::npos) << e;
  EXPECT_NE(e.find("'not-an-ip' is not an IP address"), std::string::npos) << e;
}

TEST(M365Parse, PublishedBlockChecks) {
  std::string err;
  EXPECT_TRUE(parse_published_block("40.96.0.0/13", &err)) << err;
  EXPECT_TRUE(parse_published_block("2603:1063::/38", &err)) << err;
  EXPECT_TRUE(parse_published_block("52.238.78.88", &err)) << err;  // a host route
  EXPECT_TRUE(parse_published_block("1.0.0.0/8", &err)) << err;    // the widest accepted
  for (std::string_view bad :
       {"1.2.3.4/33", "0.0.0.0/0", "8.0.0.0/7", "2000::/15", "127.0.0.1/32", "192.168.1.0/24",
        "172.20.0.0/16", "100.64.0.0/16", "169.254.1.0/24", "224.0.0.0/8", "255.255.255.255",
        "192.0.2.0/24", "fc00::/8", "fd12:3456::/32", "ff02::1", "::1", "::ffff:1.2.3.4",
        "2001:db8::/48", "0.0.0.0/8", "10.1.2.3/8", "1.2.3.4/", "1.2.3.4/08", " 1.2.3.4", ""}) {
    EXPECT_FALSE(parse_published_block(bad, &err)) << bad;
  }
  // A block that contains special space is refused, not only one inside it.
  EXPECT_FALSE(parse_published_block("8.0.0.0/6", &err));
  EXPECT_FALSE(parse_published_block("96.0.0.0/4", &err));  // wider than /8 anyway
  EXPECT_FALSE(parse_published_block("192.0.0.0/16", &err));
  EXPECT_NE(err.find("overlaps"), std::string::npos) << err;
}

TEST(M365Parse, DuplicatesAreErrors) {
  std::string e = LoadErrors("duplicate-id.json");
  EXPECT_NE(e.find("record 2 (id 84): duplicate id 84 (also record 1)"), std::string::npos) << e;
  e = LoadErrors("duplicate-key.json");
  EXPECT_NE(e.find("invalid JSON: duplicate key \"urls\" in an object"), std::string::npos) << e;
}

TEST(M365Parse, WrongDocumentsAreNamed) {
  std::string e = LoadErrors("not-a-list.json");
  EXPECT_NE(e.find("must be a JSON list of endpoint sets, not an object (this looks like a /version answer)"),
            std::string::npos) << e;
  e = LoadErrors("changes-2024053100.json");
  EXPECT_NE(e.find("this is a /changes answer, not an endpoint list"), std::string::npos) << e;
  EndpointsResult r = load_endpoints_file(kData + "no-such-file.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("no-such-file.json: cannot read: No such file or directory"),
            std::string::npos) << r.errors.front();
}

TEST(M365Parse, DeepNestingIsAnError) {
  std::string deep = "[{\"id\":1,\"serviceArea\":\"A\",\"category\":\"Allow\",\"required\":true,"
                     "\"expressRoute\":true,\"x\":" + std::string(100, '[') + std::string(100, ']') + "}]";
  std::string e = ParseErrors(deep);
  EXPECT_NE(e.find("nested deeper than"), std::string::npos) << e;
  // nlohmann itself would take a million levels; we never get there.
  std::string very = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  e = ParseErrors(very);
  EXPECT_NE(e.find("nested deeper than"), std::string::npos) << e;
}

TEST(M365Parse, ErrorsAreCapped) {
  std::string text = "[";
  for (int i = 0; i < 200; ++i) text += std::string(i ? "," : "") + "{\"id\":" + std::to_string(i) + "}";
  text += "]";
  EndpointsResult r = parse_endpoints(text, "t.json");
  ASSERT_FALSE(r.ok());
  EXPECT_LE(r.errors.size(), 51u);
  EXPECT_NE(r.errors.back().find("more errors"), std::string::npos) << r.errors.back();
}

TEST(M365Ports, ParsesListsAndRanges) {
  std::string err;
  auto p = parse_ports("80,443", &err);
  ASSERT_TRUE(p) << err;
  ASSERT_EQ(p->size(), 2u);
  EXPECT_TRUE((*p)[0].single());
  p = parse_ports(" 3478-3481 , 443", &err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ((*p)[0].first, 3478);
  EXPECT_EQ((*p)[0].last, 3481);
  EXPECT_FALSE((*p)[0].single());
  EXPECT_TRUE(parse_ports("1,65535", &err));
  for (std::string_view bad : {"", ",", "80,", ",80", "0", "65536", "-80", "+80", "80-", "81-80",
                               "80 443", "x", "080", "99999999999", "1-2-3"}) {
    EXPECT_FALSE(parse_ports(bad, &err)) << "'" << bad << "'";
  }
  std::string e = LoadErrors("bad-ports.json");
  EXPECT_NE(e.find("(id 12): 'tcpPorts': '443,,80' has an empty item"), std::string::npos) << e;
  EXPECT_NE(e.find("(id 13): 'tcpPorts': '0' is not a port (1-65535)"), std::string::npos) << e;
  EXPECT_NE(e.find("(id 14): 'udpPorts': port range '3481-3478' is reversed"), std::string::npos) << e;
  EXPECT_NE(e.find("(id 15): 'tcpPorts': '65536' is not a port"), std::string::npos) << e;
}

TEST(M365Version, VersionAnswers) {
  std::string err;
  EXPECT_EQ(load_version_file(kData + "version.json", &err).value_or(err), "2024053100");
  EXPECT_EQ(load_version_file(kData + "version-all.json", &err).value_or(err), "2024053100");
  EXPECT_EQ(load_version_file(kData + "version-all.json", &err, "China").value_or(err), "2024052800");
  EXPECT_EQ(parse_version_answer(R"([{"instance":"USGovDoD","latest":"2024052800"}])", "v", &err,
                                 "USGovDoD")
                .value_or(err),
            "2024052800");
  EXPECT_FALSE(parse_version_answer(R"({"instance":"Worldwide"})", "v", &err));
  EXPECT_NE(err.find("missing field 'latest'"), std::string::npos) << err;
  EXPECT_FALSE(parse_version_answer(R"({"instance":"Worldwide","latest": 2024053100})", "v", &err));
  EXPECT_NE(err.find("'latest' must be a string"), std::string::npos) << err;
  EXPECT_FALSE(parse_version_answer(R"({"latest": "2024 05"})", "v", &err));
  EXPECT_FALSE(parse_version_answer(R"([{"instance":"A","latest":"1"},{"instance":"B","latest":"2"}])",
                                    "v", &err));
  EXPECT_EQ(
      err,
      "v: the /version answer is for instance A, B, but the endpoint list is Worldwide's "
      "(--instance); fetch https://endpoints.office.com/version/Worldwide?clientrequestid=...");
  EXPECT_FALSE(parse_version_answer("{", "v", &err));
  EXPECT_FALSE(parse_version_answer("", "v", &err));
  EXPECT_FALSE(load_version_file(kData + "nope", &err));
  EXPECT_TRUE(valid_version("2024053100"));
  EXPECT_FALSE(valid_version(""));
  EXPECT_FALSE(valid_version("2024\n"));
  EXPECT_FALSE(valid_version(std::string(33, '1')));
}

// ---------------------------------------------------------------------------------------
// Hosts

TEST(M365Hosts, PolicyHost) {
  std::string why;
  EXPECT_EQ(policy_host("crl.microsoft.com", &why).value_or(why), "crl.microsoft.com");
  EXPECT_EQ(policy_host("*.digicert.com", &why).value_or(why), ".digicert.com");
  EXPECT_EQ(policy_host("CRL3.DigiCert.com.", &why).value_or(why), "crl3.digicert.com");
  EXPECT_EQ(policy_host("*.keydelivery.mediaservices.windows.net", &why).value_or(why),
            ".keydelivery.mediaservices.windows.net");
  EXPECT_EQ(policy_host("outlook.cloud.microsoft", &why).value_or(why), "outlook.cloud.microsoft");
  struct Bad {
    std::string_view url;
    std::string_view reason;
  };
  for (const Bad& b : std::initializer_list<Bad>{
           {"*-files.sharepoint.com", "wildcard inside a name"},
           {"autodiscover.*.onmicrosoft.com", "wildcard inside a name"},
           {"*.*.example.com", "wildcard inside a name"},
           {"login*.microsoftonline.com", "wildcard inside a name"},
           {"*", "matches every host"},
           {"*.com", "covers a whole top-level domain"},
           {"localhost", "not a fully qualified host name"},
           {"13.107.6.152", "an IP address"},
           {"*.1.2.3", "an IP address"},
           {"under_score.example.com", "not a host name"},
           {"-bad.example.com", "not a host name"},
           {"a..b.com", "not a host name"},
           {"http://crl.microsoft.com/", "not a host name"},
           {"b\xc3\xbc" "cher.example", "not an ASCII host name"},
       }) {
    why.clear();
    EXPECT_FALSE(policy_host(b.url, &why)) << b.url;
    EXPECT_NE(why.find(b.reason), std::string::npos) << b.url << ": " << why;
  }
}

TEST(M365Hosts, RevocationAndOcspLooks) {
  for (std::string_view h : {"crl.microsoft.com", "mscrl.microsoft.com", "crl3.digicert.com",
                             "ocsp.digicert.com", "cacerts.digicert.com", "oneocsp.microsoft.com"})
    EXPECT_TRUE(looks_like_revocation_host(h)) << h;
  for (std::string_view h : {"outlook.office.com", "www.microsoft.com", ".lync.com", "apps.identrust.com"})
    EXPECT_FALSE(looks_like_revocation_host(h)) << h;
  for (std::string_view h : {"ocsp.digicert.com", "ocspx.digicert.com", "ocsp2.globalsign.com",
                             "isrg.trustid.ocsp.identrust.com", "ocsp.msocsp.com"})
    EXPECT_TRUE(looks_like_ocsp_host(h)) << h;
  EXPECT_FALSE(looks_like_ocsp_host("crl.microsoft.com"));
}

// ---------------------------------------------------------------------------------------
// Import: round trip through the loader and the decision

TEST(M365Import, RevocationSetsRoundTrip) {
  EndpointList l = MustLoad(kNew);
  ImportResult r = import_policy(l, Opts());
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front());
  EXPECT_EQ(r.rule_ids, (Strings{"m365-84-ocsp", "m365-84", "m365-125-ocsp", "m365-125",
                                 "m365-125-ocsp-post"}));
  // Header: the version, the source and its hash.
  EXPECT_NE(r.policy.find("# Source: Microsoft 365 endpoint list version 2024053100"), std::string::npos);
  EXPECT_NE(r.policy.find("sha256 " + l.sha256), std::string::npos);

  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  for (const Rule& rule : p->rules()) {
    EXPECT_NE(rule.description.find("endpoint list version 2024053100"), std::string::npos) << rule.id;
    EXPECT_EQ(rule.owner, "secops@example.com");
    EXPECT_EQ(rule.ticket, "SEC-1010");
    EXPECT_EQ(rule.mode, Mode::kEnforce);
    EXPECT_NE(rule.verify, Verify::kNone) << rule.id;
    EXPECT_EQ(rule.match.ports, std::vector<std::uint16_t>{80}) << rule.id;
  }
  EXPECT_EQ(p->find_rule("m365-84")->verify, Verify::kRevocation);
  EXPECT_EQ(p->find_rule("m365-125-ocsp")->verify, Verify::kOcsp);

  // The CRL hosts bypass in the engine...
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.microsoft.com/pki/crl/products/MicRooCerAut2011_2011_03_22.crl"}), "m365-84");
  EXPECT_EQ(Decide(*p, {"HEAD", "http://mscrl.microsoft.com/pki/mscorp/crl/mswww(5).crl"}), "m365-84");
  EXPECT_EQ(Decide(*p, {"GET", "http://crl3.digicert.com/DigiCertGlobalRootG2.crl"}), "m365-125");
  EXPECT_EQ(Decide(*p, {"GET", "http://cacerts.digicert.com/DigiCertGlobalRootG2.crt"}), "m365-125");
  EXPECT_EQ(Decide(*p, {"GET", "http://s.symcb.com/pca3-g5.crl"}), "m365-125");  // *.symcb.com
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.globalsign.com/root-r3.crl"}), "m365-125");
  EXPECT_EQ(Decide(*p, {"POST", "http://ocsp.digicert.com/"}), "m365-125-ocsp");
  EXPECT_EQ(Decide(*p, {"GET", "http://ocsp.digicert.com/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ"}), "m365-125-ocsp");
  EXPECT_EQ(Decide(*p, {"POST", "http://oneocsp.microsoft.com/ocsp"}), "m365-84-ocsp");
  // ...and nothing else does.
  EXPECT_EQ(Decide(*p, {"CONNECT", "crl.microsoft.com:443"}), "");          // no tunnels
  EXPECT_EQ(Decide(*p, {"GET", "https://crl.microsoft.com/x.crl"}), "");     // port 443
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.microsoft.com:8080/x.crl"}), "");
  EXPECT_EQ(Decide(*p, {"POST", "http://crl.microsoft.com/upload"}), "");    // POST only for OCSP
  EXPECT_EQ(Decide(*p, {"PUT", "http://ocsp.digicert.com/"}), "");
  EXPECT_EQ(Decide(*p, {"GET", "http://www.microsoft.com/en-us/download/"}), "");  // reported, not imported
  EXPECT_EQ(Decide(*p, {"GET", "http://www.digicert.com/"}), "");  // narrowed, see below
  EXPECT_EQ(Decide(*p, {"GET", "http://status.digicert.com/"}), "");
  EXPECT_EQ(Decide(*p, {"GET", "http://evilverisign.com/x.crl"}), "");
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.microsoft.com.evil.test/x.crl"}), "");
  EXPECT_EQ(Decide(*p, {"GET", "http://login.microsoftonline.com/"}), "");  // set 56 not chosen

  // What could not be expressed is reported.
  EXPECT_TRUE(HasNote(r, "set 84: 'www.microsoft.com' not imported: a general web site"));
  EXPECT_TRUE(HasNote(r, "set 125: '*.digicert.com' narrowed to the hosts the set lists under it "
                        "(cacerts.digicert.com, crl3.digicert.com, crl4.digicert.com, "
                        "ocsp.digicert.com, ocspx.digicert.com)"));
  EXPECT_TRUE(HasNote(r, "set 84: TCP 443 not imported"));
  // The notes are in the header, for the reviewer.
  EXPECT_NE(r.policy.find("#   set 84: 'www.microsoft.com' not imported"), std::string::npos);

  // And the generated tests pass, also as `check` would run them.
  TestReport t = run_policy_tests(*p, kToday);
  EXPECT_EQ(t.failed, 0);
  EXPECT_GE(t.passed, 5);
  // The only warnings name the set's ".domain" wildcards (rules without path criteria).
  for (const Warning& w : lint_policy(*p, kToday))
    EXPECT_NE(w.message.find("' covers "), std::string::npos) << w.to_string();
}

TEST(M365Import, KeepWildcardsAsPublished) {
  EndpointList l = MustLoad(kNew);
  ImportOptions o = Opts();
  o.keep_wildcards = true;
  ImportResult r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_FALSE(HasNote(r, "narrowed"));
  EXPECT_TRUE(HasNote(r, "set 125: '.digicert.com' still covers www.digicert.com"));
  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(Decide(*p, {"GET", "http://www.digicert.com/"}), "m365-125");  // verify is the guard
  EXPECT_EQ(Decide(*p, {"GET", "http://digicert.com/x.crl"}), "m365-125");  // ".d" includes d
  EXPECT_EQ(p->find_rule("m365-125")->verify, Verify::kRevocation);
}

TEST(M365Import, IsDeterministic) {
  EndpointList l = MustLoad(kNew);
  EXPECT_EQ(import_policy(l, Opts()).policy, import_policy(l, Opts()).policy);
}

TEST(M365Import, ConnectOnlyWhenAsked) {
  EndpointList l = MustLoad(kNew);
  ImportOptions o = Opts();
  o.selection.service_areas = {"Common", "skype"};  // case-insensitive
  ImportResult plain = import_policy(l, o);
  ASSERT_TRUE(plain.ok()) << plain.errors.front();
  EXPECT_EQ(plain.rule_ids, (Strings{"m365-84-ocsp", "m365-84", "m365-125-ocsp", "m365-125",
                                     "m365-125-ocsp-post"}));
  EXPECT_TRUE(HasNote(plain, "set 12 (Skype): no rule: not a revocation set"));
  EXPECT_TRUE(HasNote(plain, "set 12 (Skype): TCP 80 not imported: plain HTTP"));
  EXPECT_TRUE(HasNote(plain, "set 11: UDP ports 3478,3479,3480,3481 not imported"));
  EXPECT_TRUE(HasNote(plain, "set 46 (Common): no rule: it lists no urls, only IP ranges"));

  o.connect = true;
  ImportResult r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(Decide(*p, {"CONNECT", "crl.microsoft.com:443"}), "m365-84-connect");
  EXPECT_EQ(Decide(*p, {"CONNECT", "webpoolam41e02.infra.lync.com:443"}), "m365-12-connect");
  EXPECT_EQ(Decide(*p, {"CONNECT", "teams.microsoft.com:443"}), "m365-12-connect");
  EXPECT_EQ(Decide(*p, {"CONNECT", "login.microsoftonline.com:443"}), "m365-56-connect");
  EXPECT_EQ(Decide(*p, {"CONNECT", "teams.microsoft.com:80"}), "");
  EXPECT_EQ(Decide(*p, {"CONNECT", "login.microsoftonline.com:8443"}), "");
  EXPECT_EQ(Decide(*p, {"GET", "http://teams.microsoft.com/"}), "");  // never plain HTTP
  EXPECT_EQ(p->find_rule("m365-12-connect")->verify, Verify::kNone);
  EXPECT_EQ(run_policy_tests(*p, kToday).failed, 0);
}

TEST(M365Import, WildcardsInsideNamesAreReportedNotGuessed) {
  EndpointList l = MustLoad(kNew);
  ImportOptions o = Opts();
  o.selection.ids = {8, 39};
  o.connect = true;
  ImportResult r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_TRUE(HasNote(r, "set 8: 'autodiscover.*.onmicrosoft.com' not imported: a wildcard inside a name"));
  EXPECT_TRUE(HasNote(r, "set 39: '*-files.sharepoint.com' not imported"));
  EXPECT_TRUE(HasNote(r, "set 39: '*-myfiles.sharepoint.com' not imported"));
  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(Decide(*p, {"CONNECT", "contoso-files.sharepoint.com:443"}), "");
  EXPECT_EQ(Decide(*p, {"CONNECT", "autodiscover.contoso.onmicrosoft.com:443"}), "");
  EXPECT_EQ(Decide(*p, {"CONNECT", "x.svc.ms:443"}), "m365-39-connect");

  o.connect = false;
  ImportResult none = import_policy(l, o);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.errors.front().find("nothing to import from sets 8, 39"), std::string::npos)
      << none.errors.front();
  EXPECT_TRUE(none.policy.empty());
}

TEST(M365Import, RenumberedSetsAreAnErrorWithAHint) {
  EndpointList l = MustLoad(kData + "renumbered.json");
  ImportResult r = import_policy(l, Opts());
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("set 84 is taken as a revocation set"), std::string::npos) << r.errors[0];
  EXPECT_NE(
      r.errors[0].find("revocation sets by their hosts: 201 (Common: 2 of 2 named hosts are "
                       "CRL/OCSP/CA-certificate hosts (crl.microsoft.com, mscrl.microsoft.com))"),
      std::string::npos)
      << r.errors[0];

  ImportOptions o = Opts();
  o.revocation_ids = {201};
  ImportResult ok = import_policy(l, o);
  ASSERT_TRUE(ok.ok()) << ok.errors.front();
  EXPECT_EQ(ok.rule_ids, Strings{"m365-201"});

  // A set with revocation-like hosts outside the revocation ids gets a hint.
  o.revocation_ids = {84};
  o.selection.ids = {201};
  ImportResult hint = import_policy(l, o);
  EXPECT_TRUE(HasNote(hint,
                      "set 201 (Common) is a revocation set by its hosts (2 of 2 named hosts "
                      "are CRL/OCSP/CA-certificate hosts (crl.microsoft.com, "
                      "mscrl.microsoft.com)) but not among the revocation sets 84"));

  EndpointList none = MustLoad(kNew);
  ImportOptions o2 = Opts();
  o2.revocation_ids = {4242};
  ImportResult missing = import_policy(none, o2);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.errors.front().find("the list has none of the revocation sets 4242"), std::string::npos);
}

TEST(M365Import, OptionErrors) {
  EndpointList l = MustLoad(kNew);
  ImportOptions o = Opts();
  o.version.clear();
  ImportResult r = import_policy(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("the endpoint-list version is required"), std::string::npos);
  o = Opts();
  o.version = "2024 05";
  EXPECT_FALSE(import_policy(l, o).ok());
  o = Opts();
  o.owner = "a\nb";
  EXPECT_FALSE(import_policy(l, o).ok());
  o = Opts();
  o.expires = kToday;
  r = import_policy(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("is not after today"), std::string::npos);
  o = Opts();
  o.selection.service_areas = {"Skpe"};
  r = import_policy(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("no endpoint set has serviceArea 'Skpe' (the list has: Common, Exchange, SharePoint, Skype)"),
            std::string::npos) << r.errors.front();
  o = Opts();
  o.selection.ids = {84, 4242};
  r = import_policy(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("no endpoint set has id 4242"), std::string::npos);
}

TEST(M365Import, ShadowAndExpires) {
  EndpointList l = MustLoad(kNew);
  ImportOptions o = Opts();
  o.shadow = true;
  o.expires = Day(2026, 9, 1);
  ImportResult r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  for (const Rule& rule : p->rules()) {
    EXPECT_EQ(rule.mode, Mode::kShadow);
    ASSERT_TRUE(rule.expires);
    EXPECT_EQ(*rule.expires, Day(2026, 9, 1));
  }
  EXPECT_TRUE(p->tests().empty());
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.microsoft.com/x.crl"}), "");  // shadow never bypasses
}

TEST(M365Import, RequiredOnlyAndCategory) {
  EndpointList l = MustLoad(kNew);
  ImportOptions o = Opts();
  o.selection.ids = {84, 125};
  o.selection.required_only = true;
  o.selection.categories = {"default"};
  ImportResult r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(r.rule_ids.size(), 5u);
  o.selection.categories = {"Optimize"};
  r = import_policy(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("no endpoint set matches the selection"), std::string::npos);
  o.selection.categories = {"Optimise"};
  r = import_policy(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("unknown category 'Optimise'"), std::string::npos);
}

TEST(M365Import, HostileTextStaysInsideItsYamlScalar) {
  // Display names and notes are published text: they end up in comments only, sanitized.
  auto lr = parse_endpoints(
      R"([{"id": 84, "serviceArea": "Common", "serviceAreaDisplayName": "x\n  - id: evil\n    match: {hosts: [.com]}",
           "category": "Default", "required": true, "expressRoute": false,
           "notes": "\"quoted\" \\ and\r\nnewlines", "urls": ["crl.microsoft.com"], "tcpPorts": "80"}])",
      "t.json");
  ASSERT_TRUE(lr.ok()) << lr.errors.front();
  ImportOptions o = Opts();
  o.ticket = "SEC-\"1\" \\ #x";
  ImportResult r = import_policy(*lr.list, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(r.rule_ids, Strings{"m365-84"});
  EXPECT_EQ(p->rules().size(), 1u);
  EXPECT_EQ(p->rules()[0].ticket, "SEC-\"1\" \\ #x");
}

// OCSP responders under a set's wildcards (sr.symcd.com under *.symcd.com) take POST in a
// rule of their own (verify: ocsp); GET there stays with the CRL rule, and hosts named
// like CRL or AIA servers still get no POST.
TEST(M365Import, OcspPostToWildcardRespondersIsBypassed) {
  auto p = MustLoadPolicy(import_policy(MustLoad(kNew), Opts()).policy);
  ASSERT_TRUE(p);
  const Rule* post = p->find_rule("m365-125-ocsp-post");
  ASSERT_NE(post, nullptr);
  EXPECT_EQ(post->verify, Verify::kOcsp);
  EXPECT_EQ(post->match.methods, Strings{"POST"});
  EXPECT_EQ(Decide(*p, {"POST", "http://sr.symcd.com/"}), "m365-125-ocsp-post");
  EXPECT_EQ(Decide(*p, {"POST", "http://ocsp.entrust.net/"}), "m365-125-ocsp-post");
  EXPECT_EQ(Decide(*p, {"POST", "http://ocsp.verisign.com/"}), "m365-125-ocsp-post");
  EXPECT_EQ(Decide(*p, {"GET", "http://sr.symcd.com/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ"}), "m365-125");
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.entrust.net/level1k.crl"}), "m365-125");
  EXPECT_EQ(Decide(*p, {"POST", "http://crl.globalsign.com/"}), "");  // named, not OCSP
  EXPECT_EQ(Decide(*p, {"POST", "http://cacerts.digicert.com/"}), "");
  EXPECT_EQ(Decide(*p, {"PUT", "http://sr.symcd.com/"}), "");
  EXPECT_EQ(Decide(*p, {"POST", "http://sr.symcd.com.evil.test/"}), "");
  // No request matches two of the set's rules: their host/method pairs are disjoint.
  for (const Rule& a : p->rules())
    for (const Rule& b : p->rules()) {
      if (&a == &b) continue;
      for (const std::string& m : a.match.methods) {
        if (std::find(b.match.methods.begin(), b.match.methods.end(), m) == b.match.methods.end())
          continue;
        for (const HostPattern& h : a.match.hosts)
          for (const HostPattern& g : b.match.hosts)
            EXPECT_NE(h.text, g.text) << a.id << " and " << b.id << " both take " << m;
      }
    }
}

// --connect: CONNECT rules for required sets only (others when named with --ids), never
// for a host in a customer-hosting domain unless --allow-customer-domain names it.
TEST(M365Import, ConnectTakesRequiredSetsAndNoCustomerHostingDomains) {
  EndpointList l = MustLoad(kNew);
  ImportOptions o = Opts();
  o.selection.service_areas = {"Skype", "Common"};
  o.connect = true;
  ImportResult r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(r.rule_ids, (Strings{"m365-12-connect", "m365-56-connect", "m365-59-connect",
                                 "m365-84-ocsp", "m365-84", "m365-84-connect", "m365-125-ocsp",
                                 "m365-125", "m365-125-ocsp-post", "m365-125-connect"}));
  EXPECT_TRUE(HasNote(r,
                      "set 27: 'mlccdn.blob.core.windows.net' not imported: it is in the "
                      "customer-hosting domain .core.windows.net (Azure Storage accounts: "
                      "blobs, files, tables, queues and static web sites), where any customer "
                      "of that service can host what it likes; --allow-customer-domain "
                      "mlccdn.blob.core.windows.net imports it all the same"));
  EXPECT_TRUE(HasNote(r,
                      "set 27: '.streaming.mediaservices.windows.net' not imported: it is in "
                      "the customer-hosting domain .mediaservices.windows.net"));
  EXPECT_TRUE(HasNote(r,
                      "set 59: '.msecnd.net' not imported: it covers the customer-hosting "
                      "domain .vo.msecnd.net (Azure CDN (classic) endpoints)"));
  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  for (const char* url : {"mlccdn.blob.core.windows.net:443", "evil.blob.core.windows.net:443",
                          "x.streaming.mediaservices.windows.net:443", "az1.vo.msecnd.net:443",
                          "aadcdn.msecnd.net:443"})
    EXPECT_EQ(Decide(*p, {"CONNECT", url}), "") << url;
  EXPECT_EQ(Decide(*p, {"CONNECT", "login.microsoftonline.com:443"}), "m365-56-connect");
  EXPECT_EQ(Decide(*p, {"CONNECT", "x.msauth.net:443"}), "m365-59-connect");
  // What `check` says of it: one line per tunnel rule, nothing about customer domains; the
  // rest names the CA wildcards of the revocation set, entry by entry.
  auto warnings = lint_policy(*p, kToday);
  std::size_t tunnels = 0;
  for (const auto& w : warnings) {
    if (w.message.find("allows CONNECT to port 443") != std::string::npos) {
      ++tunnels;
      continue;
    }
    EXPECT_NE(w.message.find("' covers "), std::string::npos) << w.message;
    EXPECT_EQ(w.message.find("customer-hosting"), std::string::npos) << w.message;
  }
  EXPECT_EQ(tunnels, 5u);

  // Allowed by name, the host of optional set 27 still needs the set named with --ids.
  o.allow_customer_domains = {"mlccdn.blob.core.windows.net"};
  r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_TRUE(HasNote(r,
                      "set 27 (Skype, optional): no CONNECT rule: --connect takes required "
                      "sets only; name the set with --ids to add it"));
  EXPECT_EQ(std::count(r.rule_ids.begin(), r.rule_ids.end(), "m365-27-connect"), 0);

  o.selection = {};
  o.selection.ids = {27};
  r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(r.rule_ids, Strings{"m365-27-connect"});
  p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(Decide(*p, {"CONNECT", "mlccdn.blob.core.windows.net:443"}), "m365-27-connect");
  EXPECT_EQ(Decide(*p, {"CONNECT", "evil.blob.core.windows.net:443"}), "");
  EXPECT_EQ(Decide(*p, {"CONNECT", "x.streaming.mediaservices.windows.net:443"}), "");
  EXPECT_NE(r.policy.find("customer-hosting domains allowed mlccdn.blob.core.windows.net"),
            std::string::npos);
  // ...and `check` names it.
  warnings = lint_policy(*p, kToday);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[1].message.find("rule 'm365-27-connect': CONNECT to "
                                     "'mlccdn.blob.core.windows.net', in the customer-hosting "
                                     "domain .core.windows.net"),
            std::string::npos)
      << warnings[1].message;

  // A wildcard given as published; an entry that allows nothing is reported.
  o.selection.ids = {31};
  o.allow_customer_domains = {"*.sharepoint.com", ".azurewebsites.net"};
  r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_NE(r.policy.find("        - .sharepoint.com\n"), std::string::npos);
  EXPECT_TRUE(HasNote(r,
                      "--allow-customer-domain .azurewebsites.net: no host of the chosen sets "
                      "is under it"));
  // An entry above customer-hosting domains (".windows.net" is above Storage, Media
  // Services, Service Bus and SQL) would import every customer host under all of them in
  // one go: refused unless the list itself names that wildcard (".msecnd.net" above).
  o.selection.ids = {27};
  o.allow_customer_domains = {".windows.net"};
  r = import_policy(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("is above the customer-hosting domain"), std::string::npos)
      << r.errors.front();
  EXPECT_EQ(r.policy.find("mediaservices.windows.net"), std::string::npos);
  // The list's own wildcard above a customer-hosting domain can be allowed by name.
  o.selection.ids = {59};
  o.allow_customer_domains = {".msecnd.net"};
  r = import_policy(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_NE(r.policy.find("        - .msecnd.net\n"), std::string::npos) << r.policy;
  for (const char* bad : {"crl.example.com", "*", "*.net", "a b"}) {
    o.allow_customer_domains = {bad};
    r = import_policy(l, o);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.errors.front().find("--allow-customer-domain '"), std::string::npos)
        << r.errors.front();
  }
}

// The same holds for plain-HTTP rules: a revocation set's host in a customer-hosting domain
// is left out and reported.
TEST(M365Import, CustomerHostingHostsNeverInRevocationRules) {
  auto lr = parse_endpoints(
      R"([{"id": 84, "serviceArea": "Common", "category": "Default", "required": true,
           "expressRoute": false, "tcpPorts": "80",
           "urls": ["crl.microsoft.com", "crl.blob.core.windows.net", "*.azureedge.net", "mscrl.microsoft.com"]}])",
      "t.json");
  ASSERT_TRUE(lr.ok()) << lr.errors.front();
  ImportResult r = import_policy(*lr.list, Opts());
  ASSERT_TRUE(r.ok()) << r.errors.front();
  auto p = MustLoadPolicy(r.policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.microsoft.com/x.crl"}), "m365-84");
  EXPECT_EQ(Decide(*p, {"GET", "http://crl.blob.core.windows.net/x.crl"}), "");
  EXPECT_EQ(Decide(*p, {"GET", "http://evil.azureedge.net/x.crl"}), "");
  EXPECT_TRUE(HasNote(r, "set 84: 'crl.blob.core.windows.net' not imported"));
  EXPECT_TRUE(HasNote(r, "set 84: '.azureedge.net' not imported"));
}

// ---------------------------------------------------------------------------------------
// Other instances (USGovDoD): revocation sets named by content, version files checked

const std::string kDod = kData + "endpoints-usgovdod.json";

TEST(M365Instance, ListsAreCheckedAgainstTheirInstance) {
  EXPECT_EQ(canonical_instance("usgovdod").value_or("-"), "USGovDoD");
  EXPECT_EQ(canonical_instance("WORLDWIDE").value_or("-"), "Worldwide");
  EXPECT_FALSE(canonical_instance("Germany"));
  EndpointList dod = MustLoad(kDod);
  EXPECT_EQ(check_list_instance(dod, "USGovDoD"), "");
  EXPECT_EQ(check_list_instance(dod, "USGovGCCHigh"), "");  // one family: the version decides
  EXPECT_EQ(check_list_instance(dod, "Worldwide"),
            kDod +
                ": this endpoint list is not one of the Worldwide instance: it looks like a US "
                "Government list (12 of its hosts are in US Government domains, e.g. "
                "outlook-dod.office365.us); give its instance with --instance USGovDoD or "
                "USGovGCCHigh and that instance's /version answer");
  EndpointList ww = MustLoad(kNew);
  EXPECT_EQ(check_list_instance(ww, "Worldwide"), "");
  EXPECT_NE(check_list_instance(ww, "China").find("it looks like a Worldwide list"),
            std::string::npos);
  ImportOptions o = Opts();
  ImportResult r = import_policy(dod, o);  // Worldwide by default
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("is not one of the Worldwide instance"), std::string::npos);
}

TEST(M365Instance, VersionFileOfAnotherInstanceOrFormatIsRefused) {
  std::string err;
  EXPECT_EQ(load_version_file(kData + "version-usgovdod.json", &err, "USGovDoD").value_or(err),
            "2024052800");
  EXPECT_EQ(load_version_file(kData + "version-all.json", &err, "USGovDoD").value_or(err),
            "2024052800");
  EXPECT_FALSE(load_version_file(kData + "version-usgovdod.json", &err));
  EXPECT_EQ(err, kData +
                     "version-usgovdod.json: the /version answer is for instance USGovDoD, "
                     "but the endpoint list is Worldwide's (--instance); fetch "
                     "https://endpoints.office.com/version/Worldwide?clientrequestid=...");
  EXPECT_FALSE(load_version_file(kData + "version.json", &err, "USGovDoD"));
  EXPECT_NE(err.find("is for instance Worldwide, but the endpoint list is USGovDoD's"),
            std::string::npos)
      << err;
  EXPECT_FALSE(parse_version_answer("2024053100\n", "v", &err));
  EXPECT_NE(err.find("v: a bare version, not the web service's /version answer: give it with "
                     "--version 2024053100"),
            std::string::npos)
      << err;
  EXPECT_FALSE(parse_version_answer(R"({"latest": "2024053100"})", "v", &err));
  EXPECT_NE(err.find("names no instance"), std::string::npos) << err;
  EXPECT_FALSE(load_version_file(kDod, &err, "USGovDoD"));
  EXPECT_NE(err.find("an endpoint list, not a /version answer"), std::string::npos) << err;
  EXPECT_FALSE(load_version_file(kData + "changes-2024053100.json", &err));
  EXPECT_NE(err.find("a /changes answer, not a /version answer"), std::string::npos) << err;
}

TEST(M365Instance, RevocationSetsAreNamedByContent) {
  EndpointList dod = MustLoad(kDod);
  const RevocationContent office = revocation_content(*dod.find(17));
  EXPECT_FALSE(office.revocation_set());
  EXPECT_EQ(office.describe(),
            "1 of 14 named hosts is a CRL/OCSP/CA-certificate host (crl.microsoft.com), beside "
            "activation.sls.microsoft.com, go.microsoft.com, insertmedia.bing.office.net, ...");
  const RevocationContent ca = revocation_content(*dod.find(20));
  EXPECT_TRUE(ca.revocation_set());
  EXPECT_EQ(ca.revocation_hosts.size(), 14u);
  EXPECT_EQ(ca.other_hosts, (Strings{"apps.identrust.com", "cert.int-x3.letsencrypt.org",
                                     "secure.globalsign.com"}));
  EXPECT_TRUE(revocation_content(*MustLoad(kNew).find(84)).revocation_set());
  EXPECT_TRUE(revocation_content(*MustLoad(kNew).find(125)).revocation_set());

  ImportOptions o = Opts();
  o.instance = "USGovDoD";
  o.version = "2024052800";
  ImportResult r = import_policy(dod, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors.front(),
            kDod +
                ": the revocation sets of the USGovDoD list are not known (84 and 125 are the "
                "Worldwide list's): name them with --revocation-ids after reading the list; "
                "revocation sets by their hosts: 20 (Common: 14 of 17 named hosts are "
                "CRL/OCSP/CA-certificate hosts (cacerts.digicert.com, crl.globalsign.com, "
                "crl.globalsign.net, ...), beside apps.identrust.com, "
                "cert.int-x3.letsencrypt.org, secure.globalsign.com); not revocation sets "
                "(never bypassed over plain HTTP), though they list such hosts: 17 (Common: 1 "
                "of 14 named hosts is a CRL/OCSP/CA-certificate host (crl.microsoft.com), "
                "beside activation.sls.microsoft.com, go.microsoft.com, "
                "insertmedia.bing.office.net, ...)");
  // Naming the Office client's set as a revocation set is refused...
  o.revocation_ids = std::vector<int>{17, 20};
  r = import_policy(dod, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("set 17 is taken as a revocation set (--revocation-ids 17,20) "
                                  "but is not one by its hosts (1 of 14 named hosts"),
            std::string::npos)
      << r.errors.front();
  // ...and whatever is imported, go.microsoft.com & co. are never bypassed over plain HTTP.
  for (bool connect : {false, true}) {
    o.revocation_ids = std::vector<int>{20};
    o.selection.service_areas = {"Common"};
    o.connect = connect;
    r = import_policy(dod, o);
    ASSERT_TRUE(r.ok()) << r.errors.front();
    EXPECT_TRUE(HasNote(r,
                        "set 17 (Common) lists CRL/OCSP/CA-certificate hosts but is not a "
                        "revocation set (1 of 14 named hosts"));
    auto p = MustLoadPolicy(r.policy);
    ASSERT_TRUE(p);
    for (const char* url :
         {"http://go.microsoft.com/fwlink/?LinkId=1",
          "http://officecdn.microsoft.com/pr/x/office/data/v64.cab",
          "http://activation.sls.microsoft.com/", "http://crl.microsoft.com/x.crl"})
      EXPECT_EQ(Decide(*p, {"GET", url}), "") << url;
    EXPECT_EQ(Decide(*p, {"GET", "http://crl3.digicert.com/DigiCertGlobalRootG2.crl"}), "m365-20");
    EXPECT_EQ(Decide(*p, {"POST", "http://sr.symcd.com/"}), "m365-20-ocsp-post");
    EXPECT_EQ(Decide(*p, {"CONNECT", "go.microsoft.com:443"}), connect ? "m365-17-connect" : "");
    EXPECT_EQ(Decide(*p, {"CONNECT", "officecdn.microsoft.com.edgesuite.net:443"}), "");
  }
}

// ---------------------------------------------------------------------------------------
// CIDR aggregation

TEST(M365Aggregate, DuplicatesNestedAndAdjacent) {
  EXPECT_EQ(Agg({"10.0.0.0/24", "10.0.0.0/24"}), Strings{"10.0.0.0/24"});
  EXPECT_EQ(Agg({"10.0.0.0/16", "10.0.5.0/24", "10.0.5.7/32"}), Strings{"10.0.0.0/16"});
  EXPECT_EQ(Agg({"10.0.5.0/24", "10.0.0.0/16"}), Strings{"10.0.0.0/16"});  // order does not matter
  EXPECT_EQ(Agg({"10.0.0.0/24", "10.0.1.0/24"}), Strings{"10.0.0.0/23"});
  EXPECT_EQ(Agg({"10.0.1.0/24", "10.0.2.0/24"}), (Strings{"10.0.1.0/24", "10.0.2.0/24"}));  // not aligned
  EXPECT_EQ(Agg({"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"}), Strings{"10.0.0.0/22"});
  EXPECT_EQ(Agg({"10.0.3.0/24", "10.0.1.0/24", "10.0.0.0/24", "10.0.2.0/24", "10.0.4.0/24"}),
            (Strings{"10.0.0.0/22", "10.0.4.0/24"}));
  // Two adjacent /31 from Microsoft's Exchange list, then a gap.
  EXPECT_EQ(Agg({"13.107.6.152/31", "13.107.6.154/31", "13.107.6.157/32"}),
            (Strings{"13.107.6.152/30", "13.107.6.157/32"}));
  // Overlapping (not nested) after a merge: a /23 and a /24 that overlaps its end and
  // touches the next /24.
  EXPECT_EQ(Agg({"10.0.0.0/23", "10.0.1.0/24", "10.0.2.0/23"}), Strings{"10.0.0.0/22"});
  // Host routes that fill a block.
  EXPECT_EQ(Agg({"192.0.2.0/32", "192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"}), Strings{"192.0.2.0/30"});
  EXPECT_EQ(Agg({}), Strings{});
}

TEST(M365Aggregate, IPv6AndFamilyOrder) {
  EXPECT_EQ(Agg({"2a01:111:f403::/48", "2a01:111:f402::/48"}), Strings{"2a01:111:f402::/47"});
  EXPECT_EQ(Agg({"2603:1063::/38", "2603:1063::/40", "2603:1063:100::/40"}), Strings{"2603:1063::/38"});
  EXPECT_EQ(Agg({"2620:1ec:4::152/128", "2620:1ec:4::153/128"}), Strings{"2620:1ec:4::152/127"});
  EXPECT_EQ(Agg({"2620:1ec:4::153/128", "2620:1ec:4::154/128"}),
            (Strings{"2620:1ec:4::153/128", "2620:1ec:4::154/128"}));
  // IPv4 first, then IPv6; an IPv4 block never merges with its IPv6 look-alike.
  EXPECT_EQ(Agg({"2603:1006::/40", "52.96.0.0/14", "::/96", "0.0.0.0/8"}),
            (Strings{"0.0.0.0/8", "52.96.0.0/14", "::/96", "2603:1006::/40"}));
}

TEST(M365Aggregate, EdgesOfTheAddressSpace) {
  EXPECT_EQ(Agg({"0.0.0.0/1", "128.0.0.0/1"}), Strings{"0.0.0.0/0"});
  EXPECT_EQ(Agg({"0.0.0.0/0", "1.2.3.4/32"}), Strings{"0.0.0.0/0"});
  EXPECT_EQ(Agg({"255.255.255.254/32", "255.255.255.255/32"}), Strings{"255.255.255.254/31"});
  EXPECT_EQ(Agg({"255.255.255.255/32", "0.0.0.0/32"}), (Strings{"0.0.0.0/32", "255.255.255.255/32"}));
  EXPECT_EQ(Agg({"::/1", "8000::/1"}), Strings{"::/0"});
  EXPECT_EQ(Agg({"::/0", "2001:db8::/32"}), Strings{"::/0"});
  EXPECT_EQ(Agg({"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"}),
            Strings{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"});
  EXPECT_EQ(Agg({"8000::/1", "ffff::/16"}), Strings{"8000::/1"});
}

TEST(M365Aggregate, CoversExactlyTheInput) {
  // A pseudo-random mix: every address of the input is covered, nothing else, and the
  // result has no two blocks that overlap or could merge.
  std::vector<Cidr> in;
  unsigned seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u; };
  for (int i = 0; i < 300; ++i) {
    Cidr c;
    c.base.bytes[0] = 10;
    c.base.bytes[1] = 0;
    c.base.bytes[2] = static_cast<std::uint8_t>(next() >> 24 & 0x0F);
    c.base.bytes[3] = static_cast<std::uint8_t>(next() >> 24);
    c.prefix = static_cast<std::uint8_t>(24 + (next() >> 28) % 9);  // /24../32
    for (unsigned b = c.prefix; b < 32; ++b)
      c.base.bytes[b / 8] &= static_cast<std::uint8_t>(~(0x80u >> (b % 8)));
    in.push_back(c);
  }
  auto out = aggregate_cidrs(in);
  auto covered = [](const std::vector<Cidr>& v, const IpAddress& a) {
    return std::any_of(v.begin(), v.end(), [&](const Cidr& c) { return c.contains(a); });
  };
  for (unsigned x = 0; x < 16 * 256; ++x) {
    IpAddress a;
    a.bytes[0] = 10;
    a.bytes[2] = static_cast<std::uint8_t>(x >> 8);
    a.bytes[3] = static_cast<std::uint8_t>(x);
    EXPECT_EQ(covered(in, a), covered(out, a)) << a.to_string();
  }
  for (std::size_t i = 0; i + 1 < out.size(); ++i) {
    EXPECT_FALSE(out[i].contains(out[i + 1].base)) << out[i].to_string();
    if (out[i].prefix == out[i + 1].prefix && out[i].prefix > 0) {
      Cidr parent = out[i];
      parent.prefix = static_cast<std::uint8_t>(parent.prefix - 1);
      const unsigned bit = parent.prefix;
      const bool aligned = (out[i].base.bytes[bit / 8] & (0x80u >> (bit % 8))) == 0;
      EXPECT_FALSE(aligned && parent.contains(out[i + 1].base))
          << out[i].to_string() << " + " << out[i + 1].to_string() << " should have merged";
    }
  }
  EXPECT_LT(out.size(), in.size());
}

// ---------------------------------------------------------------------------------------
// Firewall lists

TEST(M365Ips, PlainListOfTheWholeFile) {
  EndpointList l = MustLoad(kNew);
  IpsOptions o;
  IpsResult r = firewall_list(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(r.input_blocks, 116u);
  EXPECT_LT(r.blocks.size(), r.input_blocks);
  // 52.96/14 (Exchange) + 52.100/14 (EOP) + 52.104/14 (SharePoint) + 52.108/14 (Common).
  EXPECT_NE(r.text.find("\n52.96.0.0/12\n"), std::string::npos) << r.text;
  EXPECT_EQ(r.text.find("52.100.0.0/14"), std::string::npos);
  EXPECT_NE(r.text.find("\n2a01:111:f402::/47\n"), std::string::npos);
  EXPECT_EQ(r.text.find('#'), std::string::npos);  // plain: nothing but blocks
  EXPECT_EQ(r.text.substr(0, 16), "13.107.6.152/31\n");
  // Deterministic: the same input gives the same bytes.
  EXPECT_EQ(firewall_list(l, o).text, r.text);
}

TEST(M365Ips, SelectionAndFamilies) {
  EndpointList l = MustLoad(kNew);
  IpsOptions o;
  o.selection.service_areas = {"Skype"};
  o.selection.categories = {"Optimize", "Allow"};
  o.ipv6 = false;
  IpsResult r = firewall_list(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(Texts(r.blocks), (Strings{"13.107.64.0/18", "52.112.0.0/14", "52.122.0.0/15",
                                      "52.238.119.141/32", "52.244.160.207/32"}));
  o.ipv4 = false;
  o.ipv6 = true;
  r = firewall_list(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  for (const Cidr& c : r.blocks) EXPECT_TRUE(c.base.v6);
  o.selection.categories = {"Optimize"};
  o.selection.required_only = true;
  r = firewall_list(l, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Texts(r.blocks), Strings{"2603:1063::/38"});

  o = IpsOptions{};
  o.selection.ids = {84};
  r = firewall_list(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("the chosen endpoint sets list no IP ranges"), std::string::npos);
  o.selection = {};
  o.selection.service_areas = {"Teams"};
  r = firewall_list(l, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("no endpoint set has serviceArea 'Teams'"), std::string::npos);
}

TEST(M365Ips, Formats) {
  EndpointList l = MustLoad(kNew);
  IpsOptions o;
  o.selection.ids = {9};
  o.version = "2024053100";
  o.format = IpFormat::kNft;
  IpsResult r = firewall_list(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_NE(r.text.find("# Generated by `authbypass m365 ips`: Microsoft 365 endpoint list version 2024053100"),
            std::string::npos) << r.text;
  EXPECT_NE(r.text.find("set m365_v4 {\n\ttype ipv4_addr\n\tflags interval\n\telements = {\n\t\t40.92.0.0/15,\n"),
            std::string::npos) << r.text;
  EXPECT_NE(r.text.find("\t\t104.47.0.0/17\n\t}\n}\n"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("set m365_v6 {\n\ttype ipv6_addr\n\tflags interval\n\telements = {\n\t\t2a01:111:f400::/48,\n\t\t2a01:111:f403::/48\n\t}\n}\n"),
            std::string::npos) << r.text;

  o.format = IpFormat::kIptablesRestore;
  r = firewall_list(l, o);
  ASSERT_FALSE(r.ok());  // two families
  EXPECT_NE(r.errors.front().find("iptables-restore takes one address family"), std::string::npos);
  o.ipv6 = false;
  o.name = "O365_EOP";
  r = firewall_list(l, o);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_NE(r.text.find("*filter\n:O365_EOP - [0:0]\n-A O365_EOP -d 40.92.0.0/15 -j ACCEPT\n"), std::string::npos)
      << r.text;
  EXPECT_NE(r.text.find("-A O365_EOP -d 104.47.0.0/17 -j ACCEPT\nCOMMIT\n"), std::string::npos) << r.text;
  EXPECT_EQ(r.text.find("2a01:"), std::string::npos);

  o.format = IpFormat::kSquidAcl;
  o.ipv6 = true;
  o.name.clear();
  r = firewall_list(l, o);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r.text.find("\nacl m365 dst 40.92.0.0/15\n"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("\nacl m365 dst 2a01:111:f403::/48\n"), std::string::npos) << r.text;

  o.name = "1bad";
  EXPECT_FALSE(firewall_list(l, o).ok());
  o.name = "a b";
  EXPECT_FALSE(firewall_list(l, o).ok());
  EXPECT_TRUE(valid_list_name("m365_v4-x"));
  EXPECT_FALSE(valid_list_name(std::string(29, 'a')));
  EXPECT_EQ(parse_ip_format("nft"), IpFormat::kNft);
  EXPECT_EQ(parse_ip_format("iptables"), std::nullopt);
}

TEST(M365Ips, NftOmitsEmptyElements) {
  EndpointList l = MustLoad(kNew);
  IpsOptions o;
  o.selection.ids = {9};
  o.format = IpFormat::kNft;
  o.ipv6 = false;
  IpsResult r = firewall_list(l, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.text.find("m365_v6"), std::string::npos);
  // A family chosen but absent from the selection: the set is defined, without elements
  // (nft rejects "elements = { }").
  auto only_v4 = parse_endpoints(
      R"([{"id": 1, "serviceArea": "Exchange", "category": "Optimize", "required": true, "expressRoute": true,
           "ips": ["52.96.0.0/14"]}])",
      "t.json");
  ASSERT_TRUE(only_v4.ok());
  o = IpsOptions{};
  o.format = IpFormat::kNft;
  r = firewall_list(*only_v4.list, o);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r.text.find("set m365_v6 {\n\ttype ipv6_addr\n\tflags interval\n}\n"), std::string::npos) << r.text;
}

// ---------------------------------------------------------------------------------------
// Diff and /changes

const SetChange* Find(const Patch& p, int id) {
  for (const auto& c : p.changes)
    if (c.endpoint_set_id == id) return &c;
  return nullptr;
}

TEST(M365Diff, TwoVersions) {
  EndpointList a = MustLoad(kOld), b = MustLoad(kNew);
  Patch p = diff_endpoints(a, b);
  ASSERT_EQ(p.changes.size(), 7u);
  // Ordered by service area, then id.
  std::vector<int> order;
  for (const auto& c : p.changes) order.push_back(c.endpoint_set_id);
  EXPECT_EQ(order, (std::vector<int>{56, 84, 125, 35, 147, 11, 12}));

  const SetChange* c84 = Find(p, 84);
  ASSERT_NE(c84, nullptr);
  EXPECT_EQ(c84->disposition, "change");
  EXPECT_EQ(c84->service_area, "Common");
  EXPECT_EQ(c84->added_urls, Strings{"oneocsp.microsoft.com"});
  EXPECT_TRUE(c84->removed_urls.empty());
  EXPECT_EQ(c84->impact, "AddedUrl");
  EXPECT_EQ(Find(p, 125)->removed_urls, Strings{"*.omniroot.com"});
  EXPECT_EQ(Find(p, 11)->added_ips, Strings{"52.122.0.0/15"});
  EXPECT_EQ(Find(p, 12)->impact, "AddedIp");
  const SetChange* c56 = Find(p, 56);
  ASSERT_EQ(c56->attributes.size(), 1u);
  EXPECT_EQ(c56->attributes[0].name, "tcpPorts");
  EXPECT_EQ(c56->attributes[0].previous, "80,443");
  EXPECT_EQ(c56->attributes[0].current, "443");
  EXPECT_EQ(Find(p, 35)->disposition, "remove");
  EXPECT_EQ(Find(p, 35)->removed_ips, Strings{"13.107.136.0/22"});
  EXPECT_EQ(Find(p, 147)->disposition, "add");
  EXPECT_EQ(Find(p, 147)->added_urls, (Strings{"*.sharepointonline.com", "spoprod-a.akamaihd.net"}));

  EXPECT_TRUE(diff_endpoints(b, b).changes.empty());
  EXPECT_NE(patch_text(diff_endpoints(b, b)).find("no changes"), std::string::npos);

  p.from_version = "2024043000";
  p.to_version = "2024053100";
  std::string t = patch_text(p);
  EXPECT_NE(t.find("(version 2024043000) -> "), std::string::npos) << t;
  EXPECT_NE(t.find("\nCommon:\n  set 56 changed"), std::string::npos) << t;
  EXPECT_NE(t.find("  set 84 changed (impact AddedUrl)  [revocation set: re-run 'authbypass m365 import'"),
            std::string::npos) << t;
  EXPECT_NE(t.find("    + url  oneocsp.microsoft.com\n"), std::string::npos) << t;
  EXPECT_NE(t.find("    - url  *.omniroot.com\n"), std::string::npos) << t;
  EXPECT_NE(t.find("    ~ tcpPorts: 80,443 -> 443\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nSharePoint:\n  set 35 removed"), std::string::npos) << t;
  EXPECT_NE(t.find("Summary: 1 set added, 1 removed, 5 changed; 3 URLs added, 3 removed; 2 IP ranges added, 1 removed"),
            std::string::npos) << t;
  EXPECT_NE(t.find("Revocation sets changed: 84, 125"), std::string::npos) << t;
}

TEST(M365Diff, JsonPatch) {
  Patch p = diff_endpoints(MustLoad(kOld), MustLoad(kNew));
  auto j = nlohmann::json::parse(patch_json(p));
  EXPECT_EQ(j["summary"]["setsAdded"], 1);
  EXPECT_EQ(j["summary"]["ipsAdded"], 2);
  EXPECT_EQ(j["summary"]["revocationSetsChanged"], nlohmann::json({84, 125}));
  ASSERT_EQ(j["changes"].size(), 7u);
  const auto& c = j["changes"][1];
  EXPECT_EQ(c["endpointSetId"], 84);
  EXPECT_EQ(c["serviceArea"], "Common");
  EXPECT_EQ(c["disposition"], "change");
  EXPECT_EQ(c["revocationSet"], true);
  EXPECT_EQ(c["add"]["urls"], nlohmann::json({"oneocsp.microsoft.com"}));
  EXPECT_FALSE(c.contains("remove"));
  EXPECT_EQ(j["changes"][0]["previous"]["tcpPorts"], "80,443");
  EXPECT_EQ(j["changes"][0]["current"]["tcpPorts"], "443");
}

TEST(M365Changes, ParsesTheChangesAnswerAndAgreesWithTheDiff) {
  EndpointList b = MustLoad(kNew);
  ChangesResult r = load_changes_file(kData + "changes-2024053100.json", &b);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  const Patch& ch = *r.patch;
  EXPECT_EQ(ch.to_version, "2024053100");
  Patch d = diff_endpoints(MustLoad(kOld), b);
  ASSERT_EQ(ch.changes.size(), d.changes.size());
  for (const SetChange& c : d.changes) {
    const SetChange* x = Find(ch, c.endpoint_set_id);
    ASSERT_NE(x, nullptr) << c.endpoint_set_id;
    EXPECT_EQ(x->disposition, c.disposition) << c.endpoint_set_id;
    EXPECT_EQ(x->service_area, c.service_area) << c.endpoint_set_id;
    EXPECT_EQ(x->added_urls, c.added_urls) << c.endpoint_set_id;
    EXPECT_EQ(x->removed_urls, c.removed_urls) << c.endpoint_set_id;
    EXPECT_EQ(x->added_ips, c.added_ips) << c.endpoint_set_id;
    EXPECT_EQ(x->removed_ips, c.removed_ips) << c.endpoint_set_id;
  }
  const SetChange* c84 = Find(ch, 84);
  EXPECT_EQ(c84->change_id, 3085);
  EXPECT_EQ(c84->effective_date, "20240531");
  EXPECT_EQ(c84->impact, "AddedUrl");
  EXPECT_TRUE(Find(ch, 147)->attributes.empty());  // an added set's description is no change
  ASSERT_EQ(Find(ch, 56)->attributes.size(), 1u);

  std::string t = patch_text(ch);
  EXPECT_NE(t.find("changes-2024053100.json (version 2024053100)"), std::string::npos) << t;
  EXPECT_NE(t.find("set 84 changed (change 3085, version 2024053100, impact AddedUrl, effective 20240531)"),
            std::string::npos) << t;
  auto j = nlohmann::json::parse(patch_json(ch));
  EXPECT_FALSE(j.contains("from"));
  EXPECT_EQ(j["changes"][1]["id"], 3085);

  // Without an endpoint list, the service areas of most records are unknown.
  ChangesResult bare = load_changes_file(kData + "changes-2024053100.json");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(Find(*bare.patch, 84)->service_area, "");
  EXPECT_EQ(Find(*bare.patch, 147)->service_area, "SharePoint");  // from "current"
  EXPECT_NE(patch_text(*bare.patch).find("(service area not given):"), std::string::npos);
}

TEST(M365Changes, BadChanges) {
  ChangesResult r = load_changes_file(kData + "changes-bad.json");
  ASSERT_FALSE(r.ok());
  std::string all;
  for (const auto& e : r.errors) all += e + "\n";
  EXPECT_NE(all.find("change record 1 (id 1): disposition 'Rename' is not Add, Remove or Change"), std::string::npos) << all;
  EXPECT_NE(all.find("change record 1 (id 1): add: 'ips' entry '52.122.0.0/33': bad prefix length"), std::string::npos) << all;
  EXPECT_NE(all.find("change record 2 (id 2): missing field 'endpointSetId'"), std::string::npos) << all;
  r = load_changes_file(kNew);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("this is an endpoint list, not a /changes answer"), std::string::npos);
  r = parse_changes("{}", "c.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors.front().find("must be a JSON list of change records"), std::string::npos);
  r = parse_changes("[]", "c.json");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(patch_text(*r.patch).find("no changes"), std::string::npos);
}

// The list checks the endpoint and /changes parsers share, with each one's own words.
TEST(M365Changes, ListShapeErrors) {
  ChangesResult r = parse_changes("{}", "c.json");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], "c.json: a /changes answer must be a JSON list of change records, not an object");
  r = parse_changes("[1]", "c.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0], "c.json: change record 1: must be an object, not a number");
  std::string many = "[";
  for (std::size_t i = 0; i <= kMaxSets * 10; ++i) many += i ? ",{}" : "{}";
  r = parse_changes(many + "]", "c.json");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], "c.json: more than 100000 change records");
  EndpointsResult e = parse_endpoints("[1]", "e.json");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.errors[0], "e.json: record 1: must be an object (an endpoint set), not a number");
  std::string sets = "[";
  for (std::size_t i = 0; i <= kMaxSets; ++i) sets += i ? ",{}" : "{}";
  e = parse_endpoints(sets + "]", "e.json");
  ASSERT_EQ(e.errors.size(), 1u);
  EXPECT_EQ(e.errors[0], "e.json: more than 10000 endpoint sets");
}

}  // namespace
}  // namespace authbypass::m365
