// Revocation-data checker on real objects made at test time with openssl (a CA, a CRL
// with many revocations, a certificate, PKCS#7, OCSP request and response) and impostors.
#include "authbypass/revocation_check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace authbypass {
namespace {

using State = RevocationCheck::State;

std::string g_dir;

std::string slurp(const std::string& name) {
  std::ifstream in(g_dir + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class RevocationCheckTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/authbypass-rc-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    g_dir = tmpl;
    // A CA, a leaf, a CRL with 3,000 revocations (index written directly), PKCS#7, OCSP.
    std::string script = "set -e; cd " + g_dir + R"( 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -subj /CN=Test-CA -days 30 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr \
  -subj /CN=leaf 2>/dev/null
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 4660 -out leaf.pem -days 30 2>/dev/null
python3 -c "
for i in range(3000):
    print('R\t351231000000Z\t260101000000Z\t%06X\tunknown\t/CN=r%d' % (i + 16, i))
print('V\t351231000000Z\t\t1234\tunknown\t/CN=leaf')
" > index.txt
echo 01 > crlnumber
cat > ca.cnf <<EOF
[ca]
default_ca = d
[d]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 7
certificate = ca.pem
private_key = ca.key
EOF
openssl ca -config ca.cnf -gencrl -out crl.pem 2>/dev/null
openssl crl -in crl.pem -outform DER -out crl.der
openssl x509 -in leaf.pem -outform DER -out leaf.der
openssl crl2pkcs7 -nocrl -certfile ca.pem -certfile leaf.pem -outform DER -out chain.p7c
openssl crl2pkcs7 -nocrl -certfile ca.pem -out chain.p7b.pem
openssl ocsp -issuer ca.pem -cert leaf.pem -no_nonce -reqout req.der 2>/dev/null
openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin req.der \
  -respout resp.der -ndays 1 2>/dev/null
# The same with RSA keys, as real CAs use (AlgorithmIdentifiers then carry NULL params).
openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa_ca.key -out rsa_ca.pem -subj /CN=RSA-CA \
  -days 30 2>/dev/null
sed -e 's/ca.pem/rsa_ca.pem/; s/ca.key/rsa_ca.key/' ca.cnf > rsa_ca.cnf
openssl ca -config rsa_ca.cnf -gencrl -out rsa_crl.pem 2>/dev/null
openssl crl -in rsa_crl.pem -outform DER -out rsa_crl.der
openssl x509 -in rsa_ca.pem -outform DER -out rsa_ca.der
openssl crl2pkcs7 -nocrl -certfile rsa_ca.pem -outform DER -out rsa_ca.p7c
openssl ocsp -issuer rsa_ca.pem -serial 0x1234 -no_nonce -reqout rsa_req.der 2>/dev/null
openssl ocsp -index index.txt -rsigner rsa_ca.pem -rkey rsa_ca.key -CA rsa_ca.pem \
  -reqin rsa_req.der -respout rsa_resp.der -ndays 1 2>/dev/null
)";
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl fixture generation failed in " << g_dir;
  }
  static void TearDownTestSuite() {
    std::string cmd = "rm -rf " + g_dir;
    std::system(cmd.c_str());
  }

  // Feeds `body` in chunks of `chunk` bytes; returns the final state.
  static State run(RevocationCheck& c, std::string_view body, std::string_view type,
                   std::int64_t length, std::size_t chunk = 1000) {
    if (c.begin(type, "", length) == State::kRejected) return State::kRejected;
    for (std::size_t i = 0; i < body.size(); i += chunk) {
      if (c.feed(body.substr(i, chunk)) == State::kRejected) return State::kRejected;
    }
    return c.finish();
  }
  static State check(Verify v, std::string_view body, std::string_view type = "",
                     std::string* reason = nullptr, std::size_t chunk = 1000) {
    auto c = RevocationCheck::for_response(v);
    State s = run(c, body, type, static_cast<std::int64_t>(body.size()), chunk);
    if (reason) *reason = std::string(c.reason());
    return s;
  }
};

TEST_F(RevocationCheckTest, GenuineObjectsPassInAnyChunking) {
  const std::string crl = slurp("crl.der");
  ASSERT_GT(crl.size(), 50000u) << "CRL with 3,000 revocations";
  for (std::size_t chunk : {1u, 7u, 1000u, 1u << 20}) {
    auto c = RevocationCheck::for_response(Verify::kCrl);
    EXPECT_EQ(run(c, crl, "application/pkix-crl", static_cast<std::int64_t>(crl.size()), chunk),
              State::kGenuine)
        << chunk << ": " << c.reason();
    EXPECT_EQ(c.kind(), RevocationKind::kCrl);
  }
  std::string why;
  EXPECT_EQ(check(Verify::kRevocation, crl, "application/octet-stream", &why), State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kCrl, slurp("crl.pem"), "", &why, 13), State::kGenuine) << why;
  EXPECT_EQ(check(Verify::kCert, slurp("leaf.der"), "application/pkix-cert", &why), State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kCert, slurp("ca.pem"), "application/x-x509-ca-cert", &why),
            State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kCert, slurp("chain.p7c"), "application/pkcs7-mime", &why),
            State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kRevocation, slurp("chain.p7b.pem"), "", &why), State::kGenuine) << why;
  EXPECT_EQ(check(Verify::kOcsp, slurp("resp.der"), "application/ocsp-response", &why),
            State::kGenuine)
      << why;
  auto req = RevocationCheck::for_ocsp_request();
  const std::string r = slurp("req.der");
  EXPECT_EQ(run(req, r, "application/ocsp-request", static_cast<std::int64_t>(r.size()), 5),
            State::kGenuine)
      << req.reason();
}

TEST_F(RevocationCheckTest, GenuineRsaSignedObjectsPass) {
  std::string why;
  EXPECT_EQ(check(Verify::kCrl, slurp("rsa_crl.der"), "application/pkix-crl", &why),
            State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kCrl, slurp("rsa_crl.pem"), "", &why), State::kGenuine) << why;
  EXPECT_EQ(check(Verify::kCert, slurp("rsa_ca.der"), "application/pkix-cert", &why),
            State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kCert, slurp("rsa_ca.p7c"), "application/pkcs7-mime", &why),
            State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kOcsp, slurp("rsa_resp.der"), "application/ocsp-response", &why),
            State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kRevocation, slurp("rsa_crl.der"), "text/plain", &why), State::kGenuine)
      << why;
  auto req = RevocationCheck::for_ocsp_request();
  const std::string r = slurp("rsa_req.der");
  EXPECT_EQ(run(req, r, "application/ocsp-request", static_cast<std::int64_t>(r.size())),
            State::kGenuine)
      << req.reason();
  auto wrong_type = RevocationCheck::for_ocsp_request();
  EXPECT_EQ(run(wrong_type, r, "application/octet-stream", static_cast<std::int64_t>(r.size())),
            State::kRejected);
  EXPECT_EQ(wrong_type.reason(),
            "Content-Type 'application/octet-stream' is not application/ocsp-request");
}

TEST_F(RevocationCheckTest, NonSuccessfulOcspStatusIsAValidResponse) {
  const std::string unauthorized("\x30\x03\x0a\x01\x06", 5);
  std::string why;
  EXPECT_EQ(check(Verify::kOcsp, unauthorized, "application/ocsp-response", &why), State::kGenuine)
      << why;
  const std::string bad_status("\x30\x03\x0a\x01\x04", 5);
  EXPECT_EQ(check(Verify::kOcsp, bad_status, "application/ocsp-response", &why), State::kRejected);
  const std::string success_without_bytes("\x30\x03\x0a\x01\x00", 5);
  EXPECT_EQ(check(Verify::kOcsp, success_without_bytes, "", &why), State::kRejected);
}

TEST_F(RevocationCheckTest, PreviewIdentifiesFromTheFirstBytes) {
  const std::string crl = slurp("crl.der");
  auto c = RevocationCheck::for_response(Verify::kCrl);
  c.begin("application/pkix-crl", "", static_cast<std::int64_t>(crl.size()));
  EXPECT_EQ(c.feed(std::string_view(crl).substr(0, 1024)), State::kUndecided);
  EXPECT_TRUE(c.identified());
  // Without a Content-Length the total cannot be matched: not identified.
  auto n = RevocationCheck::for_response(Verify::kCrl);
  n.begin("application/pkix-crl", "", -1);
  n.feed(std::string_view(crl).substr(0, 1024));
  EXPECT_FALSE(n.identified());
  // A CRL header glued to junk is "identified" by a preview (that is the preview
  // mode's trade-off), but rejected by the full check.
  std::string glued = crl.substr(0, 1024) + std::string(crl.size() - 1024, 'A');
  auto g = RevocationCheck::for_response(Verify::kCrl);
  EXPECT_EQ(run(g, glued, "", static_cast<std::int64_t>(glued.size())), State::kRejected);
  EXPECT_NE(g.reason().find("not a valid crl"), std::string_view::npos) << g.reason();
}

TEST_F(RevocationCheckTest, Impostors) {
  const std::string crl = slurp("crl.der");
  const std::string cert = slurp("leaf.der");
  struct Case {
    const char* name;
    Verify verify;
    std::string body;
    std::string type;
    const char* reason;  // a substring of the expected reason
  } cases[] = {
      {"html", Verify::kCrl, "<!DOCTYPE html><html><body>hi</body></html>", "", "HTML"},
      {"html type", Verify::kCrl, crl, "text/html",
       "Content-Type 'text/html' is not revocation data"},
      {"exe", Verify::kRevocation, std::string("MZ\x90\0\3\0\0\0", 8) + std::string(5000, 'x'), "",
       "executable"},
      {"zip", Verify::kRevocation, std::string("PK\3\4", 4) + std::string(100, 'x'), "", "ZIP"},
      {"cert where crl only", Verify::kCrl, cert, "", "not a valid crl"},
      {"crl where cert only", Verify::kCert, crl, "application/octet-stream", "not cert/pkcs7"},
      {"truncated crl", Verify::kCrl, crl.substr(0, crl.size() - 10), "", "Content-Length"},
      {"crl + appended", Verify::kCrl, crl + "MZ", "", "Content-Length"},
      {"indefinite length", Verify::kCrl,
       std::string("\x30\x80\x30\x80", 4) + std::string(20, '\0'), "", "indefinite"},
      {"overflowing length", Verify::kCrl,
       std::string("\x30\x89\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), "", "overflows"},
      {"non-minimal length", Verify::kCrl, std::string("\x30\x81\x05", 3) + std::string(5, '\x05'),
       "", "non-minimal"},
      {"child overflows", Verify::kCrl, std::string("\x30\x04\x30\x10\x00\x00", 6), "",
       "overflows its parent"},
      {"gzip", Verify::kCrl, std::string("\x1f\x8b\x08", 3) + std::string(50, 'z'), "", "gzip"},
      {"pem broken base64", Verify::kCrl,
       "-----BEGIN X509 CRL-----\nMIIB$$$\n-----END X509 CRL-----\n", "", "invalid base64"},
      {"pem wrong label", Verify::kCrl,
       "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "", "is not crl"},
      {"empty", Verify::kCrl, "", "", "empty body"},
  };
  for (const Case& c : cases) {
    std::string why;
    EXPECT_EQ(check(Verify(c.verify), c.body, c.type, &why), State::kRejected) << c.name;
    EXPECT_NE(why.find(c.reason), std::string::npos) << c.name << ": " << why;
  }
  // Lying Content-Length: a truncated body that claims the full length.
  auto t = RevocationCheck::for_response(Verify::kCrl);
  t.begin("", "", static_cast<std::int64_t>(crl.size()));
  t.feed(std::string_view(crl).substr(0, crl.size() - 10));
  EXPECT_EQ(t.finish(), State::kRejected);
  // A valid CRL followed by appended bytes, without a Content-Length.
  auto a = RevocationCheck::for_response(Verify::kCrl);
  a.begin("", "", -1);
  a.feed(crl + "MZ");
  EXPECT_EQ(a.state(), State::kRejected);
  EXPECT_EQ(a.reason(), "bytes after the end of the DER object");
  // Truncated without Content-Length.
  auto u = RevocationCheck::for_response(Verify::kCrl);
  u.begin("", "", -1);
  u.feed(std::string_view(crl).substr(0, crl.size() / 2));
  EXPECT_EQ(u.finish(), State::kRejected);
  EXPECT_EQ(u.reason(), "truncated: the DER object is incomplete");
}

TEST_F(RevocationCheckTest, EncodingsAndCaps) {
  const std::string crl = slurp("crl.der");
  auto g = RevocationCheck::for_response(Verify::kCrl);
  EXPECT_EQ(g.begin("application/pkix-crl", "gzip", -1), State::kRejected);
  EXPECT_EQ(g.reason(), "Content-Encoding 'gzip' (only identity is checked)");
  RevocationLimits small;
  small.crl = 10000;
  auto c = RevocationCheck::for_response(Verify::kCrl, small);
  c.begin("", "", -1);
  EXPECT_EQ(c.feed(crl), State::kRejected);
  EXPECT_NE(c.reason().find("cap"), std::string_view::npos) << c.reason();
  auto big = RevocationCheck::for_response(Verify::kOcsp);
  EXPECT_EQ(big.begin("application/ocsp-response", "", 10'000'000), State::kRejected);
  // OCSP request: 1 MB of junk as application/ocsp-request.
  auto r = RevocationCheck::for_ocsp_request();
  std::string junk(1 << 20, 'j');
  EXPECT_EQ(run(r, junk, "application/ocsp-request", static_cast<std::int64_t>(junk.size())),
            State::kRejected);
  auto none = RevocationCheck::for_response(Verify::kNone);
  EXPECT_EQ(none.begin("", "", 0), State::kRejected);
}

// A minimal CAB: header, one CFFOLDER, one CFFILE named `name`, `data` stored.
std::string make_cab(const std::string& name, const std::string& data) {
  auto le32 = [](std::string& s, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  auto le16 = [](std::string& s, std::uint16_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>(v >> 8);
  };
  const std::uint32_t coff_files = 36 + 8;
  const std::uint32_t coff_data = coff_files + 16 + static_cast<std::uint32_t>(name.size()) + 1;
  const std::uint32_t total = coff_data + 8 + static_cast<std::uint32_t>(data.size());
  std::string s = "MSCF";
  le32(s, 0);
  le32(s, total);
  le32(s, 0);
  le32(s, coff_files);
  le32(s, 0);
  s += '\x03';
  s += '\x01';
  le16(s, 1);          // folders
  le16(s, 1);          // files
  le16(s, 0);          // flags
  le16(s, 0);          // setID
  le16(s, 0);          // iCabinet
  le32(s, coff_data);  // CFFOLDER
  le16(s, 1);
  le16(s, 0);
  le32(s, static_cast<std::uint32_t>(data.size()));  // CFFILE
  le32(s, 0);
  le16(s, 0);
  le16(s, 0);
  le16(s, 0);
  le16(s, 0x20);
  s += name;
  s += '\0';
  le32(s, 0);  // CFDATA
  le16(s, static_cast<std::uint16_t>(data.size()));
  le16(s, static_cast<std::uint16_t>(data.size()));
  s += data;
  return s;
}

TEST_F(RevocationCheckTest, CabTrustLists) {
  const std::string cab = make_cab("authroot.stl", std::string(300, 's'));
  std::string why;
  EXPECT_EQ(check(Verify::kCtl, cab, "application/vnd.ms-cab-compressed", &why, 3), State::kGenuine)
      << why;
  EXPECT_EQ(check(Verify::kRevocation, cab, "", &why), State::kGenuine) << why;
  EXPECT_EQ(check(Verify::kCtl, make_cab("setup.exe", "MZ"), "", &why), State::kRejected);
  EXPECT_NE(why.find("not a certificate trust list"), std::string::npos) << why;
  EXPECT_EQ(check(Verify::kCrl, cab, "", &why), State::kRejected);
  std::string lying = cab;
  lying[8] = static_cast<char>(lying[8] + 1);  // cbCabinet off by one
  EXPECT_EQ(check(Verify::kCtl, lying, "", &why), State::kRejected);
}

// DER built by hand, for the revoked-entry cases below.
std::string der_len(std::size_t n) {
  if (n < 0x80) return std::string(1, static_cast<char>(n));
  std::string b;
  for (; n > 0; n >>= 8) b.insert(b.begin(), static_cast<char>(n & 0xff));
  return std::string(1, static_cast<char>(0x80 | b.size())) + b;
}
std::string tlv(unsigned tag, const std::string& content) {
  return std::string(1, static_cast<char>(tag)) + der_len(content.size()) + content;
}
// A CRL (unsigned: the checker checks shape, not signatures) whose revokedCertificates
// holds `before` ordinary entries, then `odd`, then `after` ordinary entries.
std::string crl_with_entry(const std::string& odd, int before = 200, int after = 200) {
  const std::string reason =
      tlv(0x30, tlv(0x06, "\x55\x1d\x15") + tlv(0x04, tlv(0x0a, std::string(1, '\x01'))));
  std::string entries;
  for (int i = 0; i < before + after; ++i) {
    if (i == before) entries += odd;
    std::string serial = tlv(0x02, std::string(20, static_cast<char>(0x10 + i % 64)));
    entries += tlv(0x30, serial + tlv(0x17, "241201000000Z") + tlv(0x30, reason));
  }
  if (after == 0) entries += odd;
  const std::string alg = tlv(0x30, tlv(0x06, "\x2a\x86\x48\xce\x3d\x04\x03\x02"));
  const std::string tbs =
      tlv(0x02, std::string(1, '\x01')) + alg +
      tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, "\x55\x04\x03") + tlv(0x0c, "x")))) +
      tlv(0x17, "261202115540Z") + tlv(0x30, entries);
  return tlv(0x30, tlv(0x30, tbs) + alg + tlv(0x03, std::string(33, '\0')));
}

TEST_F(RevocationCheckTest, RevokedEntriesGetTheSameVerdictWholeOrCut) {
  // Entries that lie whole in a chunk take a faster path than entries cut by a chunk's
  // end (revocation_check.cc, skim_revoked): both must reach the same verdict and reason.
  const std::string serial = tlv(0x02, "\x01\x02");
  const std::string date = tlv(0x17, "241201000000Z");
  std::string deep = tlv(0x04, "x");
  for (int i = 0; i < 30; ++i) deep = tlv(0x30, deep);
  struct Case {
    const char* name;
    std::string entry;
    const char* reason;  // empty: genuine
  } cases[] = {
      {"no extensions", tlv(0x30, serial + date), ""},
      {"GeneralizedTime, 200-byte serial",
       tlv(0x30, tlv(0x02, std::string(200, '\x7f')) + tlv(0x18, "20241201000000Z")), ""},
      {"empty extensions", tlv(0x30, serial + date + tlv(0x30, "")), ""},
      {"constructed OCTET STRING inside extensions",
       tlv(0x30, serial + date + tlv(0x30, tlv(0x24, tlv(0x04, "ab")))), ""},
      {"empty OID in extensions", tlv(0x30, serial + date + tlv(0x30, tlv(0x06, ""))), "empty OID"},
      {"extensions nested too deep", tlv(0x30, serial + date + tlv(0x30, deep)),
       "DER nested deeper than 24 levels"},
      {"a fourth element", tlv(0x30, serial + date + tlv(0x30, "") + tlv(0x30, "")),
       "not a valid crl: unexpected SEQUENCE at depth 4"},
      {"no revocation date", tlv(0x30, serial), "not a valid crl: missing UTCTime at depth 4"},
      {"date first", tlv(0x30, date + serial), "not a valid crl: unexpected UTCTime at depth 4"},
      {"SET for SEQUENCE", tlv(0x31, serial + date), "not a valid crl: unexpected SET at depth 3"},
      {"non-minimal length", tlv(0x30, std::string("\x02\x81\x02\x01\x02", 5) + date),
       "non-minimal DER length (long form for a short length)"},
      {"serial overflows the entry", tlv(0x30, std::string("\x02\x20\x01", 3) + date),
       "DER element overflows its parent (bad lengths)"},
      {"multi-byte tag in extensions", tlv(0x30, serial + date + tlv(0x30, tlv(0x1f, "a"))),
       "DER tag 0x1f uses the multi-byte form (not expected here)"},
      {"indefinite length", std::string("\x30\x80", 2) + serial + date + std::string(2, '\0'),
       "indefinite length (BER, not DER)"},
  };
  for (const Case& c : cases) {
    for (int after : {200, 0}) {  // in the middle of the list, and its last entry
      const std::string crl = crl_with_entry(c.entry, 200, after);
      for (std::size_t chunk : {1u, 7u, 100u, 4096u, 1u << 20}) {
        std::string why;
        const State s = check(Verify::kCrl, crl, "application/pkix-crl", &why, chunk);
        const std::string where = std::string(c.name) + ", chunk " + std::to_string(chunk) +
                                  (after == 0 ? ", last entry" : "");
        if (*c.reason == '\0') {
          EXPECT_EQ(s, State::kGenuine) << where << ": " << why;
        } else {
          EXPECT_EQ(s, State::kRejected) << where;
          EXPECT_EQ(why, c.reason) << where;
        }
      }
    }
  }
  // An entry running past the end of the list.
  const std::string last = tlv(0x30, serial + date);
  std::string crl = crl_with_entry(last, 200, 0);
  std::string why;
  crl[crl.rfind(last) + 1] = '\x7f';  // the last entry's length: 19 -> 127
  EXPECT_EQ(check(Verify::kCrl, crl, "", &why), State::kRejected);
  EXPECT_EQ(why, "DER element overflows its parent (bad lengths)");
}

TEST_F(RevocationCheckTest, OversizedObjectIsRejectedAtItsHeader) {
  // A SEQUENCE declaring 110,000,000 bytes: over the 100 MiB CRL cap, known from 6 bytes.
  std::string head("\x30\x84\x06\x8e\x77\x80", 6);
  auto c = RevocationCheck::for_response(Verify::kCrl);
  c.begin("", "", -1);
  EXPECT_EQ(c.feed(head), State::kRejected);
  EXPECT_NE(c.reason().find("over the 104857600-byte cap"), std::string_view::npos) << c.reason();
}

}  // namespace
}  // namespace authbypass
