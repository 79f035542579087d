// Revocation-data checker on real objects made at test time with openssl (a CA, a CRL
// with many revocations, a certificate, PKCS#7, OCSP request and response) and impostors.
#include "authbypass/revocation_check.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

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
# SignedData that is not a certs-only bundle: a signed document (content embedded, as
# CAdES), a detached signature, a code-signing-like content type, an RFC 3161 token.
printf 'MZ\220\0 a program' > doc.bin
openssl cms -sign -binary -nodetach -in doc.bin -signer ca.pem -inkey ca.key -outform DER -out signed.p7m
openssl cms -sign -binary -in doc.bin -signer ca.pem -inkey ca.key -outform DER -out detached.p7s
openssl cms -sign -binary -nodetach -econtent_type 1.3.6.1.4.1.311.2.1.4 -in doc.bin -signer ca.pem \
  -inkey ca.key -outform DER -out spc.p7
openssl cms -sign -binary -nodetach -in doc.bin -signer ca.pem -inkey ca.key -outform PEM -out signed.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tsa.key -out tsa.pem \
  -subj /CN=TSA -days 30 -addext extendedKeyUsage=critical,timeStamping 2>/dev/null
openssl ts -query -data doc.bin -sha256 -cert -out q.tsq
printf '[tsa]\ndefault_tsa = t\n[t]\nserial = serial\nsigner_digest = sha256\ndefault_policy = 1.2.3.4\ndigests = sha256\ness_cert_id_alg = sha256\n' > tsa.cnf
echo 01 > serial
openssl ts -reply -config tsa.cnf -queryfile q.tsq -signer tsa.pem -inkey tsa.key -token_out \
  -out token.tst 2>/dev/null
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
      {"crl + appended", Verify::kCrl, crl + "MZ", "", "bytes after the end of the DER object"},
      {"crl + 3 bytes", Verify::kCrl, crl + "MZ!", "", "Content-Length"},
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

// The verdict and reason for `body`, the same whole and cut into 1-, 7- and 4096-byte
// chunks (checked here); returns the whole-body verdict.
State check_cut(Verify v, const std::string& body, std::string_view type, std::string* why) {
  State whole = State::kUndecided;
  std::string whole_reason;
  for (std::size_t chunk :
       {std::size_t{1} << 30, std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
    auto c = RevocationCheck::for_response(v);
    State s = State::kUndecided;
    if (c.begin(type, "", static_cast<std::int64_t>(body.size())) != State::kRejected) {
      for (std::size_t i = 0; i < body.size() && s != State::kRejected; i += chunk)
        s = c.feed(std::string_view(body).substr(i, chunk));
      s = c.finish();
    } else {
      s = State::kRejected;
    }
    if (whole == State::kUndecided) {
      whole = s;
      whole_reason = std::string(c.reason());
    } else {
      EXPECT_EQ(s, whole) << "chunk " << chunk << ": " << c.reason();
      EXPECT_EQ(c.reason(), whole_reason) << "chunk " << chunk;
    }
  }
  if (why) *why = whole_reason;
  return whole;
}

// What the service's preview mode does with the first `preview` bytes: true when they
// identify the object, so that the rest would stream past unchecked.
bool preview_identifies(Verify v, const std::string& body, std::string_view type,
                        std::size_t preview = 1024) {
  auto c = RevocationCheck::for_response(v);
  c.begin(type, "", static_cast<std::int64_t>(body.size()));
  c.feed(std::string_view(body).substr(0, preview));
  return c.state() == State::kUndecided && c.identified();
}

const std::string kOidSignedData("\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02", 9);
const std::string kOidData("\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01", 9);
const std::string kOidCtl("\x2b\x06\x01\x04\x01\x82\x37\x0a\x01", 9);

// ContentInfo { signedData, [0] SignedData { 1, digestAlgs, encap, [0] certs, signers } }.
std::string signed_data(const std::string& digest_algs, const std::string& encap,
                        const std::string& certs, const std::string& signers) {
  const std::string sd = tlv(0x02, "\x01") + tlv(0x31, digest_algs) + tlv(0x30, encap) +
                         (certs.empty() ? "" : tlv(0xa0, certs)) + tlv(0x31, signers);
  return tlv(0x30, tlv(0x06, kOidSignedData) + tlv(0xa0, tlv(0x30, sd)));
}

// A CertificateTrustList as Windows' authroot.stl carries it (shape only).
std::string ctl_body() {
  const std::string usage = tlv(0x30, tlv(0x06, "\x2b\x06\x01\x04\x01\x82\x37\x0a\x03\x09"));
  std::string subjects;
  for (int i = 0; i < 40; ++i)
    subjects +=
        tlv(0x30, tlv(0x04, std::string(20, static_cast<char>(i))) +
                      tlv(0x31, tlv(0x30, tlv(0x06, "\x2b\x06\x01\x04\x01\x82\x37\x0a\x0b\x14") +
                                              tlv(0x31, tlv(0x04, "name")))));
  return tlv(0x30, usage + tlv(0x04, "authroot") + tlv(0x02, "\x17") + tlv(0x17, "261201000000Z") +
                       tlv(0x30, tlv(0x06, "\x2b\x0e\x03\x02\x1a")) + tlv(0x30, subjects));
}
const std::string kSigner = tlv(0x30, tlv(0x02, "\x01") + tlv(0x04, std::string(20, 'k')));
const std::string kSha1Alg = tlv(0x30, tlv(0x06, "\x2b\x0e\x03\x02\x1a"));

// A signed CTL: PKCS#7 style (content directly under [0]) or CMS style (in an OCTET STRING).
std::string stl(const std::string& cert, bool cms_style = false) {
  const std::string content = cms_style ? tlv(0x04, ctl_body()) : ctl_body();
  return signed_data(kSha1Alg, tlv(0x06, kOidCtl) + tlv(0xa0, content), cert, kSigner);
}

struct CabOptions {
  bool mszip = true;
  std::size_t block = 32768;  // uncompressed bytes per CFDATA block
  std::uint16_t flags = 0;
  std::uint16_t compress = 0xffff;  // 0xffff: from mszip
  std::string after_block;          // appended to the first block's data (inside its size)
  std::string after_cab;            // appended to the cabinet (counted in cbCabinet)
  int files = 1;
};

CabOptions stored(std::size_t block = 32768) {
  CabOptions o;
  o.mszip = false;
  o.block = block;
  return o;
}
CabOptions blocks(std::size_t block) {
  CabOptions o;
  o.block = block;
  return o;
}
CabOptions header(std::uint16_t flags, int files = 1, std::uint16_t compress = 0xffff) {
  CabOptions o;
  o.flags = flags;
  o.files = files;
  o.compress = compress;
  return o;
}

void put32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put16(std::string& s, std::uint16_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>(v >> 8);
}

// A cabinet holding `data` under `name`: stored or MSZIP (each block a raw deflate
// stream with the previous 32 KiB as its dictionary, as Microsoft's cabarc writes).
std::string make_cab(const std::string& name, const std::string& data, const CabOptions& o = {}) {
  std::vector<std::string> blocks;
  std::vector<std::uint16_t> sizes;
  for (std::size_t at = 0; at < data.size(); at += o.block) {
    const std::string raw = data.substr(at, o.block);
    sizes.push_back(static_cast<std::uint16_t>(raw.size()));
    if (!o.mszip) {
      blocks.push_back(raw);
      continue;
    }
    z_stream z{};
    deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    if (at > 0) {
      const std::size_t from = at > 32768 ? at - 32768 : 0;
      deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(data.data() + from),
                           static_cast<uInt>(at - from));
    }
    std::string out(raw.size() + 1024, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
    z.avail_in = static_cast<uInt>(raw.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    blocks.push_back("CK" + out);
  }
  if (!o.after_block.empty()) blocks[0] += o.after_block;
  std::string files;
  for (int f = 0; f < o.files; ++f) {
    put32(files, static_cast<std::uint32_t>(data.size()));
    put32(files, 0);
    put16(files, 0);
    put16(files, 0);
    put16(files, 0);
    put16(files, 0x20);
    files += name + '\0';
  }
  const std::uint32_t coff_data = 36 + 8 + static_cast<std::uint32_t>(files.size());
  std::string body;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    put32(body, 0);
    put16(body, static_cast<std::uint16_t>(blocks[i].size()));
    put16(body, sizes[i]);
    body += blocks[i];
  }
  body += o.after_cab;
  std::string s = "MSCF";
  put32(s, 0);
  put32(s, coff_data + static_cast<std::uint32_t>(body.size()));
  put32(s, 0);
  put32(s, 36 + 8);
  put32(s, 0);
  s += "\x03\x01";
  put16(s, 1);
  put16(s, static_cast<std::uint16_t>(o.files));
  put16(s, o.flags);
  put16(s, 0x1234);
  put16(s, 0);
  put32(s, coff_data);
  put16(s, static_cast<std::uint16_t>(blocks.size()));
  put16(s, o.compress != 0xffff ? o.compress : (o.mszip ? 1 : 0));
  return s + files + body;
}

TEST_F(RevocationCheckTest, SignedDataPassesOnlyAsACertsOnlyBundle) {
  const std::string cert = slurp("leaf.der");
  const std::string data_oid = tlv(0x06, kOidData);
  struct Case {
    const char* name;
    std::string body;
    const char* reason;  // empty: genuine
  } cases[] = {
      {"openssl crl2pkcs7 (DER)", slurp("chain.p7c"), ""},
      {"openssl crl2pkcs7 (PEM)", slurp("chain.p7b.pem"), ""},
      {"certs-only, empty content", signed_data("", data_oid + tlv(0xa0, tlv(0x04, "")), cert, ""),
       ""},
      {"certs-only, no certificates", signed_data("", data_oid, "", ""), ""},
      {"CMS signed document (content embedded)", slurp("signed.p7m"),
       "not empty (digestAlgorithms"},
      {"signed document, PEM", slurp("signed.pem"), "PEM 'CMS' is not"},
      {"detached signature", slurp("detached.p7s"), "is not empty"},
      {"code-signing content type", slurp("spc.p7"), "not empty (digestAlgorithms"},
      {"RFC 3161 time-stamp token", slurp("token.tst"), "not empty (digestAlgorithms"},
      {"code-signing content type, no digest algorithms",
       signed_data("",
                   tlv(0x06, "\x2b\x06\x01\x04\x01\x82\x37\x02\x01\x04") + tlv(0xa0, tlv(0x30, "")),
                   cert, ""),
       "content type is not id-data"},
      {"id-data carrying a program",
       signed_data("", data_oid + tlv(0xa0, tlv(0x04, "MZ\x90 program")), cert, ""),
       "not empty (content"},
      {"signer, no content", signed_data("", data_oid, cert, kSigner), "is not empty (signerInfos"},
      {"digest algorithms, no signer", signed_data(kSha1Alg, data_oid, cert, ""), "is not empty"},
      {"certificate list holding a program",
       signed_data("", data_oid, tlv(0x30, tlv(0x04, "MZ program")), ""),
       "unexpected OCTET STRING"},
      {"a signed CTL is not a bundle", stl(cert), "not empty (digestAlgorithms"},
      {"a CTL without signers is not a bundle",
       signed_data("", tlv(0x06, kOidCtl) + tlv(0xa0, ctl_body()), cert, ""),
       "content type is not id-data"},
  };
  for (const Case& c : cases) {
    std::string why;
    const State s = check_cut(Verify::kCert, c.body, "application/pkcs7-mime", &why);
    if (*c.reason == '\0') {
      EXPECT_EQ(s, State::kGenuine) << c.name << ": " << why;
    } else {
      EXPECT_EQ(s, State::kRejected) << c.name;
      EXPECT_NE(why.find(c.reason), std::string::npos) << c.name << ": " << why;
      EXPECT_EQ(check_cut(Verify::kRevocation, c.body, "", &why), State::kRejected) << c.name;
    }
  }
}

TEST_F(RevocationCheckTest, CabTrustListsAreCheckedInside) {
  const std::string cert = slurp("ca.pem").empty() ? "" : slurp("leaf.der");
  std::string big_stl = stl(cert + cert + cert);  // several blocks once padded below
  std::string why;
  struct Genuine {
    const char* name;
    std::string cab;
  } genuine[] = {
      {"MSZIP, one block", make_cab("authroot.stl", stl(cert))},
      {"stored", make_cab("authroot.stl", stl(cert), stored())},
      {"CMS-style content", make_cab("disallowedcert.stl", stl(cert, true))},
      {"MSZIP, 100-byte blocks (dictionary carried over)",
       make_cab("AUTHROOT.STL", big_stl, blocks(100))},
      {"stored, 100-byte blocks", make_cab("authroot.stl", big_stl, stored(100))},
  };
  for (const Genuine& g : genuine) {
    EXPECT_EQ(check_cut(Verify::kCtl, g.cab, "application/vnd.ms-cab-compressed", &why),
              State::kGenuine)
        << g.name << ": " << why;
    EXPECT_EQ(check_cut(Verify::kRevocation, g.cab, "", &why), State::kGenuine) << g.name << why;
    auto c = RevocationCheck::for_response(Verify::kCtl);
    run(c, g.cab, "", static_cast<std::int64_t>(g.cab.size()));
    EXPECT_EQ(c.kind(), RevocationKind::kCtl);
    EXPECT_FALSE(preview_identifies(Verify::kCtl, g.cab, "", 64)) << g.name;
  }
  std::string program = std::string("MZ\x90\0", 4) + std::string(5000, 'p');
  CabOptions trailing;
  trailing.after_block = "MZ";
  CabOptions after;
  after.after_cab = std::string(8, '\0');
  struct Impostor {
    const char* name;
    std::string cab;
    const char* reason;
  } impostors[] = {
      {"program named authroot.stl", make_cab("authroot.stl", program),
       "'authroot.stl' is not a certificate trust list: it starts with 0x4d"},
      {"program named authroot.stl, stored", make_cab("authroot.stl", program, stored()),
       "is not a certificate trust list"},
      {"program named setup.exe", make_cab("setup.exe", stl(cert)),
       "not a certificate trust list (.stl)"},
      {"certs-only bundle as the .stl", make_cab("authroot.stl", slurp("chain.p7c")),
       "content type is not szOID_CTL"},
      {"CTL content type carrying a program",
       make_cab("authroot.stl",
                signed_data(kSha1Alg, tlv(0x06, kOidCtl) + tlv(0xa0, tlv(0x04, program)), cert,
                            kSigner)),
       "not a valid signed trust list"},
      {"signed document as the .stl", make_cab("authroot.stl", slurp("signed.p7m")),
       "content type is not szOID_CTL"},
      {"STL followed by a program", make_cab("authroot.stl", stl(cert) + program),
       "but Content-Length is"},
      {"bytes after a block's deflate stream", make_cab("authroot.stl", stl(cert), trailing),
       "after the end of an MSZIP block"},
      {"bytes after the last block", make_cab("authroot.stl", stl(cert), after),
       "bytes after the CAB's last data block"},
      {"two files", make_cab("authroot.stl", stl(cert), header(0, 2)), "holds 2 files"},
      {"reserved areas (signed cabinet)", make_cab("authroot.stl", stl(cert), header(4)),
       "flags 4"},
      {"LZX", make_cab("authroot.stl", stl(cert), header(0, 1, 3)), "compression 3"},
  };
  for (const Impostor& i : impostors) {
    EXPECT_EQ(check_cut(Verify::kCtl, i.cab, "", &why), State::kRejected) << i.name;
    EXPECT_NE(why.find(i.reason), std::string::npos) << i.name << ": " << why;
  }
  // A cabinet that lies about its size.
  std::string lying = make_cab("authroot.stl", stl(cert));
  lying[8] = static_cast<char>(lying[8] + 1);
  EXPECT_EQ(check_cut(Verify::kCtl, lying, "", &why), State::kRejected);
  // The trust list is not a kind of its own outside a CAB.
  EXPECT_EQ(check_cut(Verify::kCtl, stl(cert), "", &why), State::kRejected);
  EXPECT_EQ(check_cut(Verify::kCrl, make_cab("authroot.stl", stl(cert)), "", &why),
            State::kRejected);
}

TEST_F(RevocationCheckTest, CabFolderOfZerosIsRefusedAtItsFirstInflatedBytes) {
  // 2 MB of zeros as the .stl (a cabinet of a few KB, 62 blocks): inflated block by
  // block and refused once the first block is inflated, never inflated whole.
  std::string cab = make_cab("authroot.stl", std::string(2'000'000, '\0'));
  std::string why;
  EXPECT_EQ(check_cut(Verify::kCtl, cab, "", &why), State::kRejected);
  EXPECT_NE(why.find("not a certificate trust list"), std::string::npos) << why;
  auto c = RevocationCheck::for_response(Verify::kCtl);
  c.begin("", "", static_cast<std::int64_t>(cab.size()));
  std::size_t fed = 0;
  while (fed < cab.size() && c.feed(std::string_view(cab).substr(fed, 16)) != State::kRejected)
    fed += 16;
  EXPECT_LT(fed, cab.size() / 10) << "refused only after " << fed << " of " << cab.size();
}

TEST_F(RevocationCheckTest, PreviewIdentifiesOnlyWhatEndsAtContentLength) {
  const std::string crl = slurp("crl.der");
  const std::string pem = slurp("crl.pem");
  std::string zip = std::string("PK\3\4", 4) + std::string(200000, 'z');
  // PEM: never identified from a preview, even when it is genuine in full.
  EXPECT_FALSE(preview_identifies(Verify::kCrl, pem, "application/pkix-crl"));
  std::string why;
  EXPECT_EQ(check_cut(Verify::kCrl, pem, "", &why), State::kGenuine) << why;
  // A PEM certificate followed by a ZIP, as application/octet-stream.
  const std::string glued = slurp("ca.pem") + zip;
  EXPECT_FALSE(preview_identifies(Verify::kRevocation, glued, "application/octet-stream"));
  EXPECT_EQ(check_cut(Verify::kRevocation, glued, "application/octet-stream", &why),
            State::kRejected);
  // SignedData: not from its OID; the certs-only bundle is known only at its empty signers.
  EXPECT_FALSE(preview_identifies(Verify::kCert, slurp("signed.p7m"), ""));
  EXPECT_FALSE(preview_identifies(Verify::kCert, slurp("spc.p7"), "", 60));
  const std::string p7c = slurp("chain.p7c");
  EXPECT_FALSE(preview_identifies(Verify::kCert, p7c, "", p7c.size() - 1));
  // DER followed by a line ending: its end is not Content-Length's, so the full check runs.
  EXPECT_FALSE(preview_identifies(Verify::kCrl, crl + "\n", ""));
  EXPECT_TRUE(preview_identifies(Verify::kCrl, crl, ""));
  // PEM sizes: the cap of the kind its label names, known at the BEGIN line.
  const std::string cert_pem = slurp("ca.pem");
  auto c = RevocationCheck::for_response(Verify::kRevocation);
  c.begin("application/octet-stream", "", 5'000'000);
  EXPECT_EQ(c.feed(std::string_view(cert_pem).substr(0, 100)), State::kRejected);
  EXPECT_NE(c.reason().find("cap of PEM cert"), std::string_view::npos) << c.reason();
}

TEST_F(RevocationCheckTest, ToleranceForWhatWindowsAccepts) {
  const std::string crl = slurp("crl.der");
  const std::string cert = slurp("leaf.der");
  std::string why;
  // One line ending after DER: accepted (fixed bytes, nothing carried).
  EXPECT_EQ(check_cut(Verify::kCrl, crl + "\n", "", &why), State::kGenuine) << why;
  EXPECT_EQ(check_cut(Verify::kCert, cert + "\r\n", "", &why), State::kGenuine) << why;
  for (const std::string tail : {"\n\n", "\r", "\n\r", " \n", "\nM", "\r\r\n"}) {
    EXPECT_EQ(check_cut(Verify::kCrl, crl + tail, "", &why), State::kRejected) << tail.size();
  }
  // The legacy PEM label.
  std::string legacy = slurp("leaf.pem");
  ASSERT_EQ(legacy.find("-----BEGIN CERTIFICATE-----"), 0u);
  legacy.replace(legacy.find("BEGIN CERTIFICATE"), 17, "BEGIN X509 CERTIFICATE");
  legacy.replace(legacy.find("END CERTIFICATE"), 15, "END X509 CERTIFICATE");
  EXPECT_EQ(check_cut(Verify::kCert, legacy, "", &why), State::kGenuine) << why;
  EXPECT_EQ(check_cut(Verify::kCrl, legacy, "", &why), State::kRejected);
  // Blank lines after the END line: a few, not a channel.
  EXPECT_EQ(check_cut(Verify::kCert, legacy + "\n\n", "", &why), State::kGenuine) << why;
  EXPECT_EQ(check_cut(Verify::kCert, legacy + std::string(100, ' '), "", &why), State::kRejected);
  // BER indefinite length (a Windows-exported .p7b): refused, with the reason.
  const std::string p7c = slurp("chain.p7c");
  std::string ber = p7c;
  // Re-encode the outer SEQUENCE with an indefinite length: 30 80 <content> 00 00.
  const std::size_t hl = (static_cast<unsigned char>(p7c[1]) & 0x80) ? 2 + (p7c[1] & 0x7f) : 2;
  ber = std::string("\x30\x80", 2) + p7c.substr(hl) + std::string(2, '\0');
  EXPECT_EQ(check_cut(Verify::kCert, ber, "", &why), State::kRejected);
  EXPECT_EQ(why, "indefinite length (BER, not DER)");
}

// PEM's layout carries nothing: the base64 lines are as an encoder writes them (one width,
// the last line shorter, one kind of line ending, no blanks). A lax reader (whitespace
// anywhere, any line lengths) lets a genuine 1 KB certificate carry kilobytes of data as
// spaces and tabs (one bit per byte) or as line lengths.
TEST_F(RevocationCheckTest, PemLayoutCarriesNoData) {
  const std::string pem = slurp("leaf.pem");
  const std::size_t begin_end = pem.find('\n') + 1;
  const std::size_t end_at = pem.find("-----END");
  const std::string head = pem.substr(0, begin_end), tail = pem.substr(end_at);
  std::string b64;
  for (char ch : pem.substr(begin_end, end_at - begin_end))
    if (ch != '\n') b64 += ch;
  auto wrap = [&](std::size_t width, const std::string& eol) {
    std::string out;
    for (std::size_t at = 0; at < b64.size(); at += width) out += b64.substr(at, width) + eol;
    return out;
  };
  std::string why;
  // As encoders write it: 64 columns (OpenSSL), 76 (MIME), CRLF (certutil).
  for (const auto& [width, eol] :
       {std::pair<std::size_t, std::string>{64, "\n"}, {76, "\n"}, {64, "\r\n"}, {76, "\r\n"}}) {
    EXPECT_EQ(check_cut(Verify::kCert, head + wrap(width, eol) + tail, "", &why), State::kGenuine)
        << width << ": " << why;
  }
  // 2,000 bytes of data as spaces and tabs after the first base64 line.
  std::string stego;
  for (int i = 0; i < 16000; ++i) stego += (i * 7919 % 3 == 0) ? '\t' : ' ';
  const std::string lines = wrap(64, "\n");
  struct Case {
    const char* name;
    std::string body;
  } cases[] = {
      {"spaces and tabs in a line", head + lines.substr(0, 64) + stego + lines.substr(64) + tail},
      {"one space before a line break", head + lines.substr(0, 64) + " " + lines.substr(64) + tail},
      {"a tab at a line start", head + "\t" + lines + tail},
      {"a blank line inside", head + lines.substr(0, 65) + "\n" + lines.substr(65) + tail},
      {"CRLF and LF mixed", head + lines.substr(0, 64) + "\r\n" + lines.substr(65) + tail},
      {"a lone CR", head + lines.substr(0, 64) + "\r" + lines.substr(65) + tail},
      {"line lengths that vary",
       head + b64.substr(0, 10) + "\n" + b64.substr(10, 64) + "\n" + b64.substr(74) + "\n" + tail},
      {"a line over 76 columns", head + wrap(100, "\n") + tail},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(check_cut(Verify::kCert, c.body, "", &why), State::kRejected) << c.name;
    EXPECT_EQ(check_cut(Verify::kRevocation, c.body, "application/octet-stream", &why),
              State::kRejected)
        << c.name;
  }
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
