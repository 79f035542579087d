// Revocation-data checker: a streaming DER walker with per-kind shape patterns, a
// streaming PEM (base64) front end, and a CAB walker that inflates its one file into a
// nested DER walk. See revocation_check.h.
#include "authbypass/revocation_check.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>
#include <vector>

#include "text.h"

namespace authbypass {

namespace {

constexpr int kMaxDepth = 24;
constexpr std::size_t kCapture = 16;  // primitive bytes kept for content checks
constexpr std::size_t kKinds = 7;
// A seventh, internal kind: the signed certificate trust list (authroot.stl) inside a CAB.
// Only the CAB walker's nested check uses it; it is never a verdict of its own.
constexpr std::size_t kStl = 6;

unsigned bit(RevocationKind k) {
  return 1u << static_cast<unsigned>(k);
}

// ---- Shape patterns: which child tags each constructed element may hold, in order. ----

enum class Check : std::uint8_t {
  kNone,
  kCrlVersion,     // INTEGER 1 (v2)
  kOcspStatus,     // ENUMERATED 0..6 except 4
  kOidOcspBasic,   // 1.3.6.1.5.5.7.48.1.1
  kOidSignedData,  // 1.2.840.113549.1.7.2
  kOidData,        // 1.2.840.113549.1.7.1 (id-data: a certs-only bundle's content type)
  kOidCtl,         // 1.3.6.1.4.1.311.10.1 (szOID_CTL: a certificate trust list)
  kEmpty,          // the element has no content (checked at its header)
};

struct Pattern;
struct Item {
  std::uint8_t tag_a;
  std::uint8_t tag_b;  // a second accepted tag (0 if none)
  bool optional;
  const Pattern* children;  // nullptr: contents not shape-checked (DER still walked)
  Check check;
  bool identifies;    // matching this item identifies the kind
  bool encapsulates;  // a primitive whose contents are DER to walk (OCTET STRING)
};
struct Pattern {
  const Item* items;
  std::size_t n;
  bool repeated;  // every child matches items[0]
  bool choice;    // exactly one child, matching one of the items (all marked optional)
};

// A pattern item with this tag matches any element (0x00 is not a tag DER objects use
// here: end-of-contents only appears in BER's indefinite form, which is refused).
constexpr std::uint8_t kAnyTag = 0x00;
constexpr std::uint8_t kSeq = 0x30, kSet = 0x31, kInt = 0x02, kBits = 0x03, kOctets = 0x04,
                       kOid = 0x06, kEnum = 0x0a, kUtc = 0x17, kGen = 0x18;

// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }: RSA
// signatures carry NULL (05 00), RSA-PSS a SEQUENCE, ECDSA nothing.
constexpr Item kAlgItems[] = {{kOid, 0, false, nullptr, Check::kNone, false, false},
                              {kAnyTag, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kAlg = {kAlgItems, 2, false, false};
constexpr Item kValidityItems[] = {{kUtc, kGen, false, nullptr, Check::kNone, false, false},
                                   {kUtc, kGen, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kValidity = {kValidityItems, 2, false, false};
// A revoked entry: serial, revocationDate, extensions.
constexpr Item kRevokedItems[] = {{kInt, 0, false, nullptr, Check::kNone, false, false},
                                  {kUtc, kGen, false, nullptr, Check::kNone, false, false},
                                  {kSeq, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kRevoked = {kRevokedItems, 3, false, false};
constexpr Item kRevokedListItem[] = {{kSeq, 0, false, &kRevoked, Check::kNone, false, false}};
constexpr Pattern kRevokedList = {kRevokedListItem, 1, true, false};

// CRL: CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }
constexpr Item kCrlTbsItems[] = {
    {kInt, 0, true, nullptr, Check::kCrlVersion, false, false},
    {kSeq, 0, false, &kAlg, Check::kNone, false, false},
    {kSeq, 0, false, nullptr, Check::kNone, false, false},    // issuer
    {kUtc, kGen, false, nullptr, Check::kNone, true, false},  // thisUpdate
    {kUtc, kGen, true, nullptr, Check::kNone, false, false},  // nextUpdate
    {kSeq, 0, true, &kRevokedList, Check::kNone, false, false},
    {0xa0, 0, true, nullptr, Check::kNone, false, false},  // crlExtensions
};
constexpr Pattern kCrlTbs = {kCrlTbsItems, 7, false, false};
constexpr Item kCrlItems[] = {{kSeq, 0, false, &kCrlTbs, Check::kNone, false, false},
                              {kSeq, 0, false, &kAlg, Check::kNone, false, false},
                              {kBits, 0, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kCrl = {kCrlItems, 3, false, false};

// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
constexpr Item kCertTbsItems[] = {
    {0xa0, 0, true, nullptr, Check::kNone, false, false},   // version
    {kInt, 0, false, nullptr, Check::kNone, false, false},  // serialNumber
    {kSeq, 0, false, &kAlg, Check::kNone, false, false},
    {kSeq, 0, false, nullptr, Check::kNone, false, false},  // issuer
    {kSeq, 0, false, &kValidity, Check::kNone, false, false},
    {kSeq, 0, false, nullptr, Check::kNone, false, false},  // subject
    {kSeq, 0, false, nullptr, Check::kNone, true, false},   // subjectPublicKeyInfo
    {0x81, 0, true, nullptr, Check::kNone, false, false},
    {0x82, 0, true, nullptr, Check::kNone, false, false},
    {0xa3, 0, true, nullptr, Check::kNone, false, false},  // extensions
};
constexpr Pattern kCertTbs = {kCertTbsItems, 10, false, false};
constexpr Item kCertItems[] = {{kSeq, 0, false, &kCertTbs, Check::kNone, false, false},
                               {kSeq, 0, false, &kAlg, Check::kNone, false, false},
                               {kBits, 0, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kCert = {kCertItems, 3, false, false};

// OCSPResponse ::= SEQUENCE { responseStatus, responseBytes [0] EXPLICIT OPTIONAL }
constexpr Item kBasicItems[] = {{kSeq, 0, false, nullptr, Check::kNone, false, false},
                                {kSeq, 0, false, &kAlg, Check::kNone, false, false},
                                {kBits, 0, false, nullptr, Check::kNone, false, false},
                                {0xa0, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kBasic = {kBasicItems, 4, false, false};
constexpr Item kBasicWrapItems[] = {{kSeq, 0, false, &kBasic, Check::kNone, false, false}};
constexpr Pattern kBasicWrap = {kBasicWrapItems, 1, false, false};
constexpr Item kRespBytesItems[] = {{kOid, 0, false, nullptr, Check::kOidOcspBasic, true, false},
                                    {kOctets, 0, false, &kBasicWrap, Check::kNone, false, true}};
constexpr Pattern kRespBytes = {kRespBytesItems, 2, false, false};
constexpr Item kRespBytesWrapItems[] = {{kSeq, 0, false, &kRespBytes, Check::kNone, false, false}};
constexpr Pattern kRespBytesWrap = {kRespBytesWrapItems, 1, false, false};
constexpr Item kOcspItems[] = {{kEnum, 0, false, nullptr, Check::kOcspStatus, false, false},
                               {0xa0, 0, true, &kRespBytesWrap, Check::kNone, false, false}};
constexpr Pattern kOcsp = {kOcspItems, 2, false, false};

// ContentInfo { contentType signedData, content [0] EXPLICIT SignedData }, as a
// certs-only bundle (RFC 5280 4.2.2.1, RFC 8894 3.4): no digest algorithms, content type
// id-data with no or empty content, certificates and CRLs, no signers. A SignedData with
// signers or content is a signed document, a time stamp or a code signature: refused.
constexpr Item kCertListItem[] = {{kSeq, 0, false, &kCert, Check::kNone, false, false}};
constexpr Pattern kCertList = {kCertListItem, 1, true, false};
constexpr Item kCrlListItem[] = {{kSeq, 0, false, &kCrl, Check::kNone, false, false}};
constexpr Pattern kCrlList = {kCrlListItem, 1, true, false};
constexpr Item kEmptyOctetsItems[] = {{kOctets, 0, false, nullptr, Check::kEmpty, false, false}};
constexpr Pattern kEmptyOctets = {kEmptyOctetsItems, 1, false, false};
constexpr Item kEncapDataItems[] = {{kOid, 0, false, nullptr, Check::kOidData, false, false},
                                    {0xa0, 0, true, &kEmptyOctets, Check::kNone, false, false}};
constexpr Pattern kEncapData = {kEncapDataItems, 2, false, false};
constexpr Item kSignedDataItems[] = {
    {kInt, 0, false, nullptr, Check::kNone, false, false},      // version
    {kSet, 0, false, nullptr, Check::kEmpty, false, false},     // digestAlgorithms
    {kSeq, 0, false, &kEncapData, Check::kNone, false, false},  // encapContentInfo
    {0xa0, 0, true, &kCertList, Check::kNone, false, false},    // certificates
    {0xa1, 0, true, &kCrlList, Check::kNone, false, false},     // crls
    {kSet, 0, false, nullptr, Check::kEmpty, true, false},      // signerInfos: none
};
constexpr Pattern kSignedData = {kSignedDataItems, 6, false, false};
constexpr Item kSignedWrapItems[] = {{kSeq, 0, false, &kSignedData, Check::kNone, false, false}};
constexpr Pattern kSignedWrap = {kSignedWrapItems, 1, false, false};
constexpr Item kPkcs7Items[] = {{kOid, 0, false, nullptr, Check::kOidSignedData, false, false},
                                {0xa0, 0, false, &kSignedWrap, Check::kNone, false, false}};
constexpr Pattern kPkcs7 = {kPkcs7Items, 2, false, false};

// A signed certificate trust list (the .stl file inside a CAB trust list): SignedData whose
// content type is szOID_CTL and whose content is a CertificateTrustList, either directly
// (PKCS#7 style, as Windows writes it) or inside an OCTET STRING (CMS style).
constexpr Item kOidListItem[] = {{kOid, 0, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kOidList = {kOidListItem, 1, true, false};
constexpr Item kCtlBodyItems[] = {
    {kInt, 0, true, nullptr, Check::kNone, false, false},      // version
    {kSeq, 0, false, &kOidList, Check::kNone, false, false},   // subjectUsage
    {kOctets, 0, true, nullptr, Check::kNone, false, false},   // listIdentifier
    {kInt, 0, true, nullptr, Check::kNone, false, false},      // sequenceNumber
    {kUtc, kGen, false, nullptr, Check::kNone, false, false},  // ctlThisUpdate
    {kUtc, kGen, true, nullptr, Check::kNone, false, false},   // ctlNextUpdate
    {kSeq, 0, false, &kAlg, Check::kNone, false, false},       // subjectAlgorithm
    {kSeq, 0, true, nullptr, Check::kNone, false, false},      // trustedSubjects
    {0xa0, 0, true, nullptr, Check::kNone, false, false},      // ctlExtensions
};
constexpr Pattern kCtlBody = {kCtlBodyItems, 9, false, false};
constexpr Item kCtlWrapItems[] = {{kSeq, 0, false, &kCtlBody, Check::kNone, false, false}};
constexpr Pattern kCtlWrap = {kCtlWrapItems, 1, false, false};
constexpr Item kCtlContentItems[] = {{kSeq, 0, true, &kCtlBody, Check::kNone, false, false},
                                     {kOctets, 0, true, &kCtlWrap, Check::kNone, false, true}};
constexpr Pattern kCtlContent = {kCtlContentItems, 2, false, true};
constexpr Item kEncapCtlItems[] = {{kOid, 0, false, nullptr, Check::kOidCtl, false, false},
                                   {0xa0, 0, false, &kCtlContent, Check::kNone, false, false}};
constexpr Pattern kEncapCtl = {kEncapCtlItems, 2, false, false};
constexpr Item kStlSignedItems[] = {
    {kInt, 0, false, nullptr, Check::kNone, false, false},     // version
    {kSet, 0, false, nullptr, Check::kNone, false, false},     // digestAlgorithms
    {kSeq, 0, false, &kEncapCtl, Check::kNone, false, false},  // encapContentInfo
    {0xa0, 0, true, &kCertList, Check::kNone, false, false},   // certificates
    {0xa1, 0, true, &kCrlList, Check::kNone, false, false},    // crls
    {kSet, 0, false, nullptr, Check::kNone, true, false},      // signerInfos
};
constexpr Pattern kStlSigned = {kStlSignedItems, 6, false, false};
constexpr Item kStlWrapItems[] = {{kSeq, 0, false, &kStlSigned, Check::kNone, false, false}};
constexpr Pattern kStlWrap = {kStlWrapItems, 1, false, false};
constexpr Item kStlItems[] = {{kOid, 0, false, nullptr, Check::kOidSignedData, false, false},
                              {0xa0, 0, false, &kStlWrap, Check::kNone, false, false}};
constexpr Pattern kStlRoot = {kStlItems, 2, false, false};

// OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT OPTIONAL }
constexpr Item kReqListItem[] = {{kSeq, 0, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kReqList = {kReqListItem, 1, true, false};
constexpr Item kTbsReqItems[] = {{0xa0, 0, true, nullptr, Check::kNone, false, false},
                                 {0xa1, 0, true, nullptr, Check::kNone, false, false},
                                 {kSeq, 0, false, &kReqList, Check::kNone, true, false},
                                 {0xa2, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kTbsReq = {kTbsReqItems, 4, false, false};
constexpr Item kOcspReqItems[] = {{kSeq, 0, false, &kTbsReq, Check::kNone, false, false},
                                  {0xa0, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kOcspReq = {kOcspReqItems, 2, false, false};

const Pattern* root_pattern(std::size_t index) {
  if (index == kStl) return &kStlRoot;
  switch (static_cast<RevocationKind>(index)) {
    case RevocationKind::kCrl:
      return &kCrl;
    case RevocationKind::kOcspResponse:
      return &kOcsp;
    case RevocationKind::kCertificate:
      return &kCert;
    case RevocationKind::kPkcs7:
      return &kPkcs7;
    case RevocationKind::kOcspRequest:
      return &kOcspReq;
    case RevocationKind::kCtl:
      return nullptr;
  }
  return nullptr;
}

constexpr std::uint8_t kOidOcspBasicBytes[] = {0x2b, 0x06, 0x01, 0x05, 0x05,
                                               0x07, 0x30, 0x01, 0x01};
constexpr std::uint8_t kOidSignedDataBytes[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
                                                0x0d, 0x01, 0x07, 0x02};
constexpr std::uint8_t kOidDataBytes[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
constexpr std::uint8_t kOidCtlBytes[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x01};

// The name of a kind, the internal trust-list kind included.
std::string kind_name(std::size_t index) {
  return index == kStl ? std::string("signed trust list")
                       : std::string(to_string(static_cast<RevocationKind>(index)));
}

std::string hex_byte(std::uint8_t b) {
  std::string out = "0x";
  text::append_hex(out, &b, 1);
  return out;
}

std::string tag_name(std::uint8_t t) {
  switch (t) {
    case kSeq:
      return "SEQUENCE";
    case kSet:
      return "SET";
    case kInt:
      return "INTEGER";
    case kBits:
      return "BIT STRING";
    case kOctets:
      return "OCTET STRING";
    case kOid:
      return "OID";
    case kEnum:
      return "ENUMERATED";
    case kUtc:
      return "UTCTime";
    case kGen:
      return "GeneralizedTime";
    default:
      return "tag " + hex_byte(t);
  }
}

// What the first bytes of a non-revocation body look like, for the audit reason.
std::string describe_start(std::string_view s) {
  if (s.empty()) return "an empty body";
  auto starts = [&](std::string_view p) { return text::starts_with_icase(s, p); };
  if (starts("<!doctype") || starts("<html") || starts("<?xml") || s[0] == '<') return "HTML/XML";
  if (starts("MZ")) return "a Windows executable (MZ)";
  if (starts("PK\x03\x04")) return "a ZIP archive";
  if (starts("\x1f\x8b")) return "gzip data";
  if (starts("\x7f"
             "ELF"))
    return "an ELF executable";
  if (starts("%PDF")) return "a PDF document";
  if (starts("{") || starts("[")) return "JSON or text";
  return "first byte " + hex_byte(static_cast<std::uint8_t>(s[0]));
}

// ---- Content-Type narrowing ----

// The media type of a Content-Type value: parameters and surrounding blanks dropped.
std::string_view trim_media_type(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  return ct;
}

// The kinds a Content-Type allows; 0 for a type that is not revocation data.
unsigned kinds_for_content_type(std::string_view ct, bool* known) {
  ct = trim_media_type(ct);
  *known = true;
  const unsigned any = bit(RevocationKind::kCrl) | bit(RevocationKind::kOcspResponse) |
                       bit(RevocationKind::kCertificate) | bit(RevocationKind::kPkcs7) |
                       bit(RevocationKind::kCtl) | bit(RevocationKind::kOcspRequest);
  struct Map {
    std::string_view type;
    unsigned kinds;
  };
  static const Map kMap[] = {
      {"application/pkix-crl", bit(RevocationKind::kCrl)},
      {"application/x-pkcs7-crl", bit(RevocationKind::kCrl) | bit(RevocationKind::kPkcs7)},
      {"application/x-x509-crl", bit(RevocationKind::kCrl)},
      {"application/ocsp-response", bit(RevocationKind::kOcspResponse)},
      {"application/ocsp-request", bit(RevocationKind::kOcspRequest)},
      {"application/pkix-cert", bit(RevocationKind::kCertificate)},
      {"application/x-x509-ca-cert",
       bit(RevocationKind::kCertificate) | bit(RevocationKind::kPkcs7)},
      {"application/x-x509-user-cert", bit(RevocationKind::kCertificate)},
      {"application/pkcs7-mime", bit(RevocationKind::kPkcs7) | bit(RevocationKind::kCertificate)},
      {"application/x-pkcs7-certificates",
       bit(RevocationKind::kPkcs7) | bit(RevocationKind::kCertificate)},
      {"application/x-pkcs7-mime", bit(RevocationKind::kPkcs7)},
      {"application/vnd.ms-cab-compressed", bit(RevocationKind::kCtl)},
      {"application/octet-stream", any},
      {"binary/octet-stream", any},
      {"text/plain", any},  // some CA servers label CRLs so; the bytes decide
  };
  if (ct.empty()) return any;
  for (const Map& m : kMap) {
    if (text::iequals(ct, m.type)) return m.kinds;
  }
  *known = false;
  return 0;
}

}  // namespace

std::string_view to_string(RevocationKind k) {
  switch (k) {
    case RevocationKind::kCrl:
      return "crl";
    case RevocationKind::kOcspResponse:
      return "ocsp";
    case RevocationKind::kCertificate:
      return "cert";
    case RevocationKind::kPkcs7:
      return "pkcs7";
    case RevocationKind::kCtl:
      return "ctl";
    case RevocationKind::kOcspRequest:
      return "ocsp-request";
  }
  return "?";
}

struct RevocationCheck::Impl {
  using State = RevocationCheck::State;

  // -- configuration --
  unsigned allowed = 0;  // kinds the rule allows
  RevocationLimits limits;
  std::string none_reason;  // set when the check cannot pass at all (verify: none)

  // -- overall --
  State state = State::kUndecided;
  std::string reason;
  bool begun = false;
  std::int64_t content_length = -1;
  std::uint64_t bytes = 0;
  enum class Format : std::uint8_t { kSniffing, kDer, kPem, kCab } format = Format::kSniffing;
  std::string sniff;  // first bytes, until the format is known (at most 64)

  // -- candidates (kinds still possible) --
  struct Candidate {
    bool alive = false;
    bool identified = false;
    int progress = 0;  // elements matched, to pick the most telling failure reason
    int status = -1;   // OCSP responseStatus
    std::string failure;
    struct Level {
      const Pattern* pattern = nullptr;
      std::size_t pos = 0;          // next pattern item
      std::uint8_t check_item = 0;  // item index matched by the current child
    };
    std::array<Level, kMaxDepth + 1> levels{};
  };
  std::array<Candidate, kKinds> cand;
  unsigned alive_mask = 0;  // bit k set exactly when cand[k].alive

  // -- DER walker --
  struct Frame {
    std::uint64_t remaining = 0;  // content bytes left
  };
  std::array<Frame, kMaxDepth + 1> frames{};
  int depth = -1;  // index of the innermost open frame; -1 before the outer object
  bool der_done = false;
  std::uint64_t der_total = 0;  // outer object size (header + content), once known
  std::uint64_t der_seen = 0;   // DER bytes consumed
  std::uint8_t hdr[12] = {};
  std::size_t hdr_len = 0;
  bool in_prim = false;
  std::uint8_t prim_tag = 0;
  std::uint64_t prim_left = 0;
  std::uint8_t capture[kCapture] = {};
  std::size_t capture_len = 0;
  std::uint64_t prim_size = 0;
  bool line_end_ok = true;  // one line ending may follow the object (not inside a CAB)
  std::string line_end;     // the bytes after the object (at most 2)

  // -- PEM --
  std::string pem_label;
  std::uint32_t b64_acc = 0;
  int b64_n = 0;     // characters in the current group of four
  int b64_bits = 0;  // bits in b64_acc not yet emitted
  bool b64_padding = false;
  enum class PemState : std::uint8_t { kBody, kEndLine, kAfter } pem_state = PemState::kBody;
  std::string pem_line;  // the END line being read
  // The base64 lines' layout: as an encoder writes it, so that it carries nothing.
  static constexpr std::size_t kPemWidthMax = 76;  // MIME's width; OpenSSL writes 64
  std::size_t pem_col = 0;                         // base64 characters in the current line
  std::size_t pem_width = 0;                       // the first line's: no later line is longer
  bool pem_short = false;        // a line shorter than the first was seen: it was the last
  bool pem_cr = false;           // a CR was just read (a LF must follow)
  std::uint8_t pem_eol = 0;      // the lines' ending: 1 LF, 2 CRLF (0: none yet)
  std::size_t pem_trailing = 0;  // blank bytes after the END line
  static constexpr std::size_t kPemTrailingMax = 64;

  // ---------------------------------------------------------------------------------

  void reject(std::string why) {
    if (state == State::kRejected) return;
    state = State::kRejected;
    reason = std::move(why);
  }

  std::uint64_t cap_of(unsigned kinds) const {
    std::uint64_t c = 0;
    auto take = [&](RevocationKind k, std::uint64_t v) {
      if (kinds & bit(k)) c = std::max(c, v);
    };
    take(RevocationKind::kCrl, limits.crl);
    take(RevocationKind::kOcspResponse, limits.ocsp);
    take(RevocationKind::kOcspRequest, limits.ocsp);
    take(RevocationKind::kCertificate, limits.cert);
    take(RevocationKind::kPkcs7, limits.cert);
    take(RevocationKind::kCtl, limits.ctl);
    if (kinds & (1u << kStl)) c = std::max(c, limits.ctl);
    return c;
  }

  void kill(std::size_t k, std::string why) {
    Candidate& c = cand[k];
    if (!c.alive) return;
    c.alive = false;
    c.failure = std::move(why);
    alive_mask &= ~(1u << k);
    if (alive_mask == 0) {
      // Report the candidate that came furthest: its failure says most.
      std::size_t best = k;
      for (std::size_t i = 0; i < kKinds; ++i) {
        if ((allowed_now & (1u << i)) && cand[i].progress > cand[best].progress) best = i;
      }
      std::string r = cand[best].failure;
      if (std::popcount(allowed_now) > 1) {
        r = "not " + kinds_text(allowed_now) + ": " + r;
      } else {
        r = "not a valid " + kind_name(best) + ": " + r;
      }
      reject(r);
    }
  }
  unsigned allowed_now = 0;  // allowed after Content-Type narrowing

  static std::string kinds_text(unsigned kinds) {
    std::string s;
    for (std::size_t i = 0; i < kKinds; ++i) {
      if (!(kinds & (1u << i))) continue;
      if (!s.empty()) s += "/";
      s += kind_name(i);
    }
    return s;
  }

  // ---- DER ----

  // An element header at depth `d` (0 = outer) was read.
  void on_header(std::uint8_t tag, std::uint64_t len, std::size_t hlen) {
    const int d = depth + 1;
    if (d == 0) {
      der_total = hlen + len;
      for (std::size_t k = 0; k < kKinds; ++k) {
        if (!cand[k].alive) continue;
        std::uint64_t cap = cap_of(1u << k);
        if (der_total > cap) {
          kill(k, "object of " + std::to_string(der_total) + " bytes is over the " +
                      std::to_string(cap) + "-byte cap");
        }
      }
      const auto cl = static_cast<std::uint64_t>(content_length);
      if (format == Format::kDer && content_length >= 0 &&
          (cl < der_total || cl - der_total > (line_end_ok ? 2u : 0u))) {
        reject("DER object is " + std::to_string(der_total) + " bytes but Content-Length is " +
               std::to_string(content_length));
        return;
      }
    } else {
      Frame& parent = frames[static_cast<std::size_t>(depth)];
      if (hlen + len > parent.remaining) {
        reject("DER element overflows its parent (bad lengths)");
        return;
      }
      parent.remaining -= hlen + len;
    }
    if (state == State::kRejected) return;
    if (d > kMaxDepth) {
      reject("DER nested deeper than " + std::to_string(kMaxDepth) + " levels");
      return;
    }
    // Shape checks, per live candidate.
    bool want_capture = false, encapsulate = false;
    // The live candidates (kill(k) clears only k's own bit, so the snapshot stays exact).
    for (unsigned live = alive_mask; live != 0; live &= live - 1) {
      const auto k = static_cast<std::size_t>(std::countr_zero(live));
      Candidate& c = cand[k];
      const Item* item = nullptr;
      if (d == 0) {
        if (tag != kSeq) {
          kill(k, "starts with " + tag_name(tag) + ", not SEQUENCE");
          continue;
        }
        c.levels[0].pattern = root_pattern(k);
        c.levels[0].pos = 0;
        ++c.progress;
        continue;
      }
      Candidate::Level& lv = c.levels[static_cast<std::size_t>(d - 1)];
      const Pattern* p = lv.pattern;
      if (p == nullptr) {
        c.levels[static_cast<std::size_t>(d)] = {};
        continue;
      }
      std::size_t idx = 0;
      if (p->repeated) {
        if (p->items[0].tag_a == kAnyTag || tag == p->items[0].tag_a ||
            (p->items[0].tag_b && tag == p->items[0].tag_b))
          item = &p->items[0];
      } else if (!(p->choice && lv.pos > 0)) {  // a choice takes one child
        for (std::size_t i = lv.pos; i < p->n; ++i) {
          const Item& it = p->items[i];
          if (it.tag_a == kAnyTag || tag == it.tag_a || (it.tag_b != 0 && tag == it.tag_b)) {
            item = &it;
            idx = i;
            break;
          }
          if (!it.optional) break;
        }
      }
      if (item == nullptr) {
        kill(k, "unexpected " + tag_name(tag) + " at depth " + std::to_string(d));
        continue;
      }
      if (!p->repeated) lv.pos = idx + 1;
      lv.check_item = static_cast<std::uint8_t>(idx);
      ++c.progress;
      if (static_cast<RevocationKind>(k) == RevocationKind::kOcspResponse && d == 1 && idx == 1 &&
          c.status != 0) {
        kill(k, "OCSP response with status " + std::to_string(c.status) + " carries responseBytes");
        continue;
      }
      if (item->check == Check::kEmpty) {
        if (len != 0) {
          kill(k, tag_name(tag) + " at depth " + std::to_string(d) + " is not empty" +
                      empty_hint(k, d, idx));
          continue;
        }
        if (item->identifies && identifies_for(k, p)) c.identified = true;
      } else if (item->identifies && item->check == Check::kNone && identifies_for(k, p)) {
        c.identified = true;
      }
      if (item->check != Check::kNone) want_capture = true;
      if (item->encapsulates) encapsulate = true;
      c.levels[static_cast<std::size_t>(d)] = {item->children, 0, 0};
    }
    if (state == State::kRejected) return;
    const bool constructed = (tag & 0x20) != 0;
    if (constructed || encapsulate) {
      if (encapsulate && constructed) {
        reject("constructed OCTET STRING (not DER)");
        return;
      }
      depth = d;
      frames[static_cast<std::size_t>(d)] = Frame{len};
      if (len == 0) close_frames();
    } else {
      if (tag == kOid && len == 0) {
        reject("empty OID");
        return;
      }
      in_prim = true;
      prim_tag = tag;
      prim_left = len;
      prim_size = len;
      capture_len = 0;
      (void)want_capture;
      if (len == 0) end_primitive();
    }
  }

  // The primitive just ended is exactly this OID's contents.
  bool oid_is(const std::uint8_t (&oid)[9]) const {
    return prim_size == sizeof oid && std::memcmp(capture, oid, sizeof oid) == 0;
  }

  // Why a SignedData element that must be empty matters, for the audit reason.
  static std::string empty_hint(std::size_t k, int d, std::size_t idx) {
    if (k != static_cast<std::size_t>(RevocationKind::kPkcs7)) return {};
    if (d != 3) return " (content: a signed document, not a certs-only bundle)";
    return idx == 1 ? " (digestAlgorithms: a signed object, not a certs-only bundle)"
                    : " (signerInfos: a signed object, not a certs-only bundle)";
  }

  // Which identifying items count for kind k: a SignedData is identified by its own
  // signerInfos, never by the certificates (or CRLs) it carries.
  static bool identifies_for(std::size_t k, const Pattern* p) {
    if (k == static_cast<std::size_t>(RevocationKind::kPkcs7)) return p == &kSignedData;
    if (k == kStl) return p == &kStlSigned;
    return true;
  }

  // A primitive at depth depth+1 ended; its first bytes are in capture.
  void end_primitive() {
    in_prim = false;
    const int d = depth + 1;
    for (unsigned live = d == 0 ? 0u : alive_mask; live != 0; live &= live - 1) {
      const auto k = static_cast<std::size_t>(std::countr_zero(live));
      Candidate& c = cand[k];
      const Candidate::Level& lv = c.levels[static_cast<std::size_t>(d - 1)];
      if (lv.pattern == nullptr) continue;
      const Item& it =
          lv.pattern->repeated ? lv.pattern->items[0] : lv.pattern->items[lv.check_item];
      std::string_view content(reinterpret_cast<const char*>(capture), capture_len);
      switch (it.check) {
        case Check::kNone:
          break;
        case Check::kCrlVersion:
          if (prim_size != 1 || capture[0] != 1) kill(k, "CRL version is not v2");
          break;
        case Check::kOcspStatus:
          if (prim_size != 1 || capture[0] > 6 || capture[0] == 4) {
            kill(k, "bad OCSP responseStatus");
          } else {
            c.status = capture[0];
            if (c.status != 0) c.identified = true;
          }
          break;
        case Check::kOidOcspBasic:
          if (prim_size != sizeof kOidOcspBasicBytes ||
              std::memcmp(capture, kOidOcspBasicBytes, sizeof kOidOcspBasicBytes) != 0) {
            kill(k, "responseType is not id-pkix-ocsp-basic");
          } else {
            c.identified = true;
          }
          break;
        case Check::kOidSignedData:
          // Not identifying: a SignedData is one of the allowed kinds only once its
          // content type and its (absent) signers are seen.
          if (!oid_is(kOidSignedDataBytes)) kill(k, "contentType is not signedData");
          break;
        case Check::kOidData:
          if (!oid_is(kOidDataBytes)) {
            kill(k,
                 "SignedData's content type is not id-data (a signed document or token, "
                 "not a certs-only bundle)");
          }
          break;
        case Check::kOidCtl:
          if (!oid_is(kOidCtlBytes)) kill(k, "SignedData's content type is not szOID_CTL");
          break;
        case Check::kEmpty:
          break;
      }
      (void)content;
    }
    close_frames();
  }

  // Closes every frame whose content is complete, checking required children.
  void close_frames() {
    while (depth >= 0 && frames[static_cast<std::size_t>(depth)].remaining == 0 &&
           state != State::kRejected) {
      const int d = depth;
      for (unsigned live = alive_mask; live != 0; live &= live - 1) {
        const auto k = static_cast<std::size_t>(std::countr_zero(live));
        Candidate& c = cand[k];
        const Candidate::Level& lv = c.levels[static_cast<std::size_t>(d)];
        const Pattern* p = lv.pattern;
        if (p == nullptr) continue;
        if (p->repeated) continue;
        if (p->choice && lv.pos == 0) {
          kill(k, "empty element at depth " + std::to_string(d));
          continue;
        }
        for (std::size_t i = lv.pos; i < p->n; ++i) {
          if (!p->items[i].optional) {
            kill(k,
                 "missing " + tag_name(p->items[i].tag_a) + " at depth " + std::to_string(d + 1));
            break;
          }
        }
        if (c.alive && static_cast<RevocationKind>(k) == RevocationKind::kOcspResponse && d == 0 &&
            c.status == 0 && lv.pos < 2) {
          kill(k, "successful OCSP response without responseBytes");
        }
      }
      --depth;
      if (depth < 0) der_done = true;
    }
  }

  // The DER header rules, in one place (the walk and the fast path below both use them):
  // the header at h[0..avail) gives its length, 0 if more bytes are needed, -1 if it
  // breaks DER (bad_header_reason says how).
  [[gnu::always_inline]] static int decode_header(const std::uint8_t* h, std::size_t avail,
                                                  std::uint8_t& tag, std::uint64_t& len) {
    if (avail < 2) return 0;
    tag = h[0];
    if ((tag & 0x1f) == 0x1f) return -1;  // multi-byte tag
    const std::uint8_t l0 = h[1];
    if (l0 < 0x80) {
      len = l0;
      return 2;
    }
    const std::size_t n = l0 & 0x7f;
    if (n == 0 || n > 4) return -1;  // indefinite, or a length past 32 bits
    if (avail < 2 + n) return 0;
    if (h[2] == 0) return -1;  // leading zero
    len = 0;
    for (std::size_t i = 0; i < n; ++i) len = (len << 8) | h[2 + i];
    if (len < 0x80) return -1;  // long form for a short length
    return static_cast<int>(2 + n);
  }

  // Why decode_header refused the header at h, in words for the audit log.
  [[gnu::cold, gnu::noinline]] static std::string bad_header_reason(const std::uint8_t* h) {
    if ((h[0] & 0x1f) == 0x1f) {
      return "DER tag " + hex_byte(h[0]) + " uses the multi-byte form (not expected here)";
    }
    const std::size_t n = h[1] & 0x7f;
    if (n == 0) return "indefinite length (BER, not DER)";
    if (n > 4) return "DER length of " + std::to_string(n) + " bytes overflows";
    if (h[2] == 0) return "non-minimal DER length (leading zero)";
    return "non-minimal DER length (long form for a short length)";
  }

  // decode_header for the walk: a header that breaks DER rejects the body. Inlined into
  // feed_der, which calls it for every DER header (not inlined, a 100 MB CRL takes 10%
  // more instructions).
  [[gnu::always_inline]] int parse_header(const std::uint8_t* h, std::size_t avail,
                                          std::uint8_t& tag, std::uint64_t& len) {
    const int r = decode_header(h, avail, tag, len);
    if (r < 0) [[unlikely]]
      reject(bad_header_reason(h));
    return r;
  }

  // ---- Fast path: the entries of a CRL's revokedCertificates ----
  //
  // A big CRL is almost all revoked entries, ten DER headers each. While the CRL is the
  // one live candidate and the walk stands between two entries of that list, the entries
  // that lie whole in the chunk are checked here in one pass, with exactly the checks the
  // walk above makes (header rules, lengths inside the parent, SEQUENCE { INTEGER, Time,
  // SEQUENCE OPTIONAL }, any DER inside the extensions, no empty OID, the depth limit), and
  // consumed with the same effect on the walker's state. An entry this pass does not
  // accept is left to the walk, which gives the verdict and the reason: this pass never
  // rejects, so it can only be faster, never different.

  // decode_header for this pass: the header's length, or 0 when it is cut or breaks DER
  // (the walk then takes the entry and says why).
  static std::size_t whole_header(const std::uint8_t* h, std::size_t avail, std::uint8_t& tag,
                                  std::uint64_t& len) {
    const int r = decode_header(h, avail, tag, len);
    return r > 0 ? static_cast<std::size_t>(r) : 0;
  }

  // Elements filling [q, end) exactly, at depth d and below, with no shape to match: true
  // if the walk would accept them all.
  static bool plain_der(const std::uint8_t* q, const std::uint8_t* end, int d) {
    while (q < end) {
      if (d > kMaxDepth) return false;
      std::uint8_t tag = 0;
      std::uint64_t len = 0;
      const std::size_t h = whole_header(q, static_cast<std::size_t>(end - q), tag, len);
      if (h == 0 || len > static_cast<std::uint64_t>(end - q) - h) return false;
      q += h;
      if ((tag & 0x20) != 0) {
        if (!plain_der(q, q + len, d + 1)) return false;
      } else if (tag == kOid && len == 0) {
        return false;
      }
      q += len;
    }
    return true;
  }

  // One revoked entry at [q, q+avail), at depth d: its size if the walk would accept it
  // whole (*matched: the headers the CRL's pattern matched), else 0.
  static std::size_t revoked_entry(const std::uint8_t* q, std::size_t avail, int d, int* matched) {
    std::uint8_t tag = 0;
    std::uint64_t len = 0;
    const std::size_t h = whole_header(q, avail, tag, len);
    if (h == 0 || tag != kSeq || d + 1 > kMaxDepth || len > avail - h) return 0;
    const std::uint8_t* c = q + h;
    const std::uint8_t* const end = c + len;
    std::size_t ch = whole_header(c, static_cast<std::size_t>(end - c), tag, len);  // serial
    if (ch == 0 || tag != kInt || len > static_cast<std::uint64_t>(end - c) - ch) return 0;
    c += ch + len;
    ch = whole_header(c, static_cast<std::size_t>(end - c), tag, len);  // revocationDate
    if (ch == 0 || (tag != kUtc && tag != kGen) || len > static_cast<std::uint64_t>(end - c) - ch)
      return 0;
    c += ch + len;
    *matched = 3;
    if (c < end) {  // crlEntryExtensions: one SEQUENCE, the entry's last element
      ch = whole_header(c, static_cast<std::size_t>(end - c), tag, len);
      if (ch == 0 || tag != kSeq || len != static_cast<std::uint64_t>(end - c) - ch) return 0;
      if (!plain_der(c + ch, end, d + 2)) return 0;
      *matched = 4;
    }
    return static_cast<std::size_t>(end - q);
  }

  // Consumes the whole revoked entries at the start of p[0..n) when the walk stands in a
  // CRL's revokedCertificates; returns the bytes consumed.
  std::size_t skim_revoked(const std::uint8_t* p, std::size_t n) {
    constexpr auto kCrlIndex = static_cast<std::size_t>(RevocationKind::kCrl);
    Candidate& c = cand[kCrlIndex];
    Frame& list = frames[static_cast<std::size_t>(depth)];
    const int d = depth + 1;
    std::size_t used = 0;
    while (list.remaining > 0) {
      const std::size_t avail =
          static_cast<std::size_t>(std::min<std::uint64_t>(n - used, list.remaining));
      int matched = 0;
      const std::size_t e = revoked_entry(p + used, avail, d, &matched);
      if (e == 0) break;
      used += e;
      list.remaining -= e;
      c.progress += matched;
    }
    der_seen += used;
    if (list.remaining == 0) close_frames();
    return used;
  }

  bool in_revoked_list() const {
    constexpr auto kCrlIndex = static_cast<std::size_t>(RevocationKind::kCrl);
    return alive_mask == bit(RevocationKind::kCrl) && depth >= 0 &&
           cand[kCrlIndex].levels[static_cast<std::size_t>(depth)].pattern == &kRevokedList;
  }

  void feed_der(const std::uint8_t* p, std::size_t n) {
    while (n > 0 && state != State::kRejected) {
      if (der_done) {
        if (format == Format::kDer && line_end_ok) {
          take_line_end(p, n);
        } else {
          reject("bytes after the end of the DER object");
        }
        return;
      }
      if (!in_prim && hdr_len == 0 && in_revoked_list()) {
        const std::size_t used = skim_revoked(p, n);
        p += used;
        n -= used;
        if (n == 0) return;
        if (used > 0) continue;  // the list may have ended: check der_done, in_prim again
      }
      if (in_prim) {
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(prim_left, n));
        if (capture_len < kCapture) {
          std::size_t c = std::min(take, kCapture - capture_len);
          std::memcpy(capture + capture_len, p, c);
          capture_len += c;
        }
        prim_left -= take;
        p += take;
        n -= take;
        der_seen += take;
        if (prim_left == 0) end_primitive();
        continue;
      }
      std::uint8_t tag = 0;
      std::uint64_t len = 0;
      if (hdr_len == 0) {  // a header that lies whole in this chunk is read in place
        const int h = parse_header(p, n, tag, len);
        if (h < 0) return;
        if (h > 0) {
          p += h;
          n -= static_cast<std::size_t>(h);
          der_seen += static_cast<std::uint64_t>(h);
          on_header(tag, len, static_cast<std::size_t>(h));
          continue;
        }
      }
      // A header cut by the chunk's end: collected byte by byte.
      hdr[hdr_len++] = *p++;
      --n;
      ++der_seen;
      int h = parse_header(hdr, hdr_len, tag, len);
      if (h < 0) return;
      if (h == 0) {
        if (hdr_len >= sizeof hdr) reject("bad DER header");
        continue;
      }
      hdr_len = 0;
      on_header(tag, len, static_cast<std::size_t>(h));
    }
  }

  // After the DER object, one line ending ("\n" or "\r\n") and nothing else: what
  // Windows and OpenSSL accept from a file written with a final newline. Two bytes at
  // most, of a fixed value: nothing can be carried in them.
  void take_line_end(const std::uint8_t* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      line_end += static_cast<char>(p[i]);
      if (line_end != "\n" && line_end != "\r" && line_end != "\r\n") {
        reject("bytes after the end of the DER object");
        return;
      }
    }
  }

  void finish_der() {
    if (state == State::kRejected) return;
    if (line_end == "\r") {
      reject("bytes after the end of the DER object");
      return;
    }
    if (!der_done) {
      reject(der_seen == 0 ? "empty body" : "truncated: the DER object is incomplete");
      return;
    }
    pick_genuine();
  }

  void pick_genuine() {
    for (std::size_t k = 0; k < kKinds; ++k) {
      if (cand[k].alive && cand[k].identified) {
        state = State::kGenuine;
        found = static_cast<RevocationKind>(k);
        return;
      }
    }
    reject("structure complete but not identified as " + kinds_text(allowed_now));
  }
  RevocationKind found = RevocationKind::kCrl;

  // ---- PEM ----

  static int b64_value(std::uint8_t c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  }

  void feed_pem(const std::uint8_t* p, std::size_t n) {
    std::uint8_t out[3 * 256];
    std::size_t w = 0;
    auto flush = [&] {
      if (w > 0) feed_der(out, w);
      w = 0;
    };
    for (std::size_t i = 0; i < n && state != State::kRejected; ++i) {
      std::uint8_t c = p[i];
      if (pem_state == PemState::kAfter) {
        if (c != '\r' && c != '\n' && c != ' ' && c != '\t') {
          reject("bytes after the PEM END line");
        } else if (++pem_trailing > kPemTrailingMax) {
          reject("more than " + std::to_string(kPemTrailingMax) +
                 " blank bytes after the PEM END line");
        }
        continue;
      }
      if (pem_state == PemState::kEndLine) {
        if (c == '\n') {
          check_end_line();
          continue;
        }
        if (pem_line.size() > 80) {
          reject("PEM END line too long");
          continue;
        }
        pem_line += static_cast<char>(c);
        continue;
      }
      if (!pem_layout(c)) {
        if (pem_state == PemState::kEndLine) flush();  // the base64 part is over
        continue;
      }
      if (c == '=') {
        if (b64_n < 2) {
          reject("PEM: misplaced '=' in base64");
          continue;
        }
        // "xx==" carries 1 byte, "xxx=" 2: they were emitted as they came.
        b64_padding = true;
        b64_n = (b64_n + 1) % 4;
        b64_acc = 0;
        b64_bits = 0;
        continue;
      }
      int v = b64_value(c);
      if (v < 0 || b64_padding) {
        reject(b64_padding ? "PEM: base64 after '=' padding" : "PEM: invalid base64 character");
        continue;
      }
      b64_acc = (b64_acc << 6) | static_cast<std::uint32_t>(v);
      b64_bits += 6;
      b64_n = (b64_n + 1) % 4;
      if (b64_bits >= 8) {
        b64_bits -= 8;
        out[w++] = static_cast<std::uint8_t>(b64_acc >> b64_bits);
        b64_acc &= (1u << b64_bits) - 1;
      }
      if (w + 3 > sizeof out) flush();
    }
    flush();
  }

  // Checks one byte of the base64 part's layout: true for a base64 character (or '=') to
  // decode; false for a line break or the END line's first '-' (handled here), or on a
  // rejection. Only line breaks separate lines (no spaces, tabs or blank lines), every
  // line ends the same way, and every line is as wide as the first but the last one.
  bool pem_layout(std::uint8_t c) {
    if (c == '\r') {
      if (pem_cr) reject("PEM: a carriage return not followed by a line feed");
      pem_cr = true;
      return false;
    }
    if (c == '\n') {
      pem_line_break();
      return false;
    }
    if (pem_cr) {
      reject("PEM: a carriage return not followed by a line feed");
      return false;
    }
    if (c == '-' && pem_col == 0) {
      pem_state = PemState::kEndLine;
      pem_line = "-";
      return false;
    }
    if (c == ' ' || c == '\t') {
      reject("PEM: a blank inside the base64 (only line breaks may separate its lines)");
      return false;
    }
    if (pem_short) {
      reject("PEM: a base64 line after a shorter one (only the last line may be shorter)");
      return false;
    }
    if (++pem_col > (pem_width ? pem_width : kPemWidthMax)) {
      reject(pem_width ? "PEM: a base64 line longer than the first"
                       : "PEM: a base64 line longer than " + std::to_string(kPemWidthMax) +
                             " characters");
      return false;
    }
    return true;
  }

  void pem_line_break() {
    const std::uint8_t eol = pem_cr ? 2 : 1;
    pem_cr = false;
    if (pem_col == 0) {
      reject("PEM: a blank line inside the base64");
    } else if (pem_eol != 0 && pem_eol != eol) {
      reject("PEM: lines ending both in CRLF and in LF");
    } else {
      pem_eol = eol;
      if (pem_width == 0) {
        pem_width = pem_col;
      } else if (pem_col < pem_width) {
        pem_short = true;
      }
      pem_col = 0;
    }
  }

  void check_end_line() {
    std::string_view line = pem_line;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line != "-----END " + pem_label + "-----") {
      reject("PEM END line does not match BEGIN " + pem_label);
      return;
    }
    if (b64_n != 0) {
      reject("PEM: base64 ends in the middle of a group");
      return;
    }
    pem_state = PemState::kAfter;
  }

  // ---- CAB ----
  //
  // A CAB trust list is one cabinet, one folder, one file named *.stl, nothing else: the
  // header (no reserved areas, no chained cabinets), the folder entry, the file entry and
  // the data blocks follow each other with no gap, and the last block ends the cabinet.
  // The folder is stored or MSZIP-compressed; its data is inflated block by block (each
  // block a raw deflate stream whose dictionary is the previous 32 KiB of output) and fed
  // to a nested DER check that accepts only a signed certificate trust list. Memory: the
  // fixed parts being read, one block's output, 32 KiB of history and zlib's state.

  enum class CabPart : std::uint8_t { kHeader, kFolder, kFile, kBlockHeader, kBlock, kEnd };
  struct ZDeleter {
    void operator()(z_stream* z) const {
      inflateEnd(z);
      delete z;
    }
  };
  static constexpr std::size_t kCabBlockMax = 32768;  // uncompressed bytes per CFDATA
  static constexpr std::size_t kCabNameMax = 255;

  CabPart cab_part = CabPart::kHeader;
  std::string cab_fixed;  // the header, folder, file entry or block header being read
  std::uint32_t cab_size = 0, cab_data_start = 0, cab_file_size = 0;
  std::uint16_t cab_blocks = 0, cab_blocks_done = 0, cab_compress = 0;
  std::uint32_t cab_block_left = 0;  // compressed bytes of the current block still to come
  std::uint16_t cab_block_out = 0;   // its uncompressed size
  std::uint64_t cab_unpacked = 0, stl_fed = 0;
  std::string cab_name;
  std::unique_ptr<z_stream, ZDeleter> zs;
  std::vector<std::uint8_t> block_out, history;
  std::uint8_t ck_seen = 0;   // bytes of the MSZIP "CK" signature seen in this block
  bool block_end = false;     // the block's deflate stream has ended
  std::unique_ptr<Impl> stl;  // the check of the file inside

  static std::uint32_t le32(const char* p) {
    const auto* u = reinterpret_cast<const std::uint8_t*>(p);
    return static_cast<std::uint32_t>(u[0]) | (static_cast<std::uint32_t>(u[1]) << 8) |
           (static_cast<std::uint32_t>(u[2]) << 16) | (static_cast<std::uint32_t>(u[3]) << 24);
  }
  static std::uint16_t le16(const char* p) {
    const auto* u = reinterpret_cast<const std::uint8_t*>(p);
    return static_cast<std::uint16_t>(u[0] | (u[1] << 8));
  }

  // Collects `want` bytes of a fixed part into cab_fixed; true once it is complete.
  bool collect(const std::uint8_t*& p, std::size_t& n, std::size_t want) {
    const std::size_t take = std::min(n, want - cab_fixed.size());
    cab_fixed.append(reinterpret_cast<const char*>(p), take);
    p += take;
    n -= take;
    return cab_fixed.size() == want;
  }

  void feed_cab(const std::uint8_t* p, std::size_t n) {
    while (n > 0 && state != State::kRejected) {
      switch (cab_part) {
        case CabPart::kHeader:
          if (collect(p, n, 36)) cab_header();
          break;
        case CabPart::kFolder:
          if (collect(p, n, 8)) cab_folder();
          break;
        case CabPart::kFile: {
          // 16 fixed bytes, then the NUL-terminated name.
          const std::size_t before = cab_fixed.size();
          if (before < 16) {
            collect(p, n, 16);
            break;
          }
          const auto* nul = static_cast<const std::uint8_t*>(std::memchr(p, 0, n));
          const std::size_t take = nul ? static_cast<std::size_t>(nul - p) + 1 : n;
          if (before - 16 + take > kCabNameMax + 1) {
            reject("CAB file name too long");
            return;
          }
          cab_fixed.append(reinterpret_cast<const char*>(p), take);
          p += take;
          n -= take;
          if (nul) cab_file();
          break;
        }
        case CabPart::kBlockHeader:
          if (collect(p, n, 8)) cab_block_header();
          break;
        case CabPart::kBlock: {
          const std::size_t take =
              static_cast<std::size_t>(std::min<std::uint64_t>(n, cab_block_left));
          cab_block_data(p, take);
          p += take;
          n -= take;
          cab_block_left -= static_cast<std::uint32_t>(take);
          if (cab_block_left == 0 && state != State::kRejected) cab_block_done();
          break;
        }
        case CabPart::kEnd:
          reject("bytes after the CAB's last data block");
          return;
      }
    }
  }

  void cab_header() {
    const char* h = cab_fixed.data();
    cab_size = le32(h + 8);
    const std::uint32_t coff_files = le32(h + 16);
    const std::uint16_t folders = le16(h + 26), files = le16(h + 28), flags = le16(h + 30);
    if (le32(h + 4) != 0 || le32(h + 12) != 0 || le32(h + 20) != 0) {
      reject("CAB header reserved fields are not zero");
    } else if (h[24] != 3 || h[25] != 1) {
      reject("CAB version is not 1.3");
    } else if (flags != 0) {
      reject("CAB with flags " + std::to_string(flags) +
             " (reserved areas, a signature or chained cabinets): not a trust list's cabinet");
    } else if (folders != 1 || files != 1 || le16(h + 34) != 0) {
      reject("CAB holds " + std::to_string(files) + " files in " + std::to_string(folders) +
             " folders (a trust list's cabinet holds one file)");
    } else if (cab_size > limits.ctl) {
      reject("CAB of " + std::to_string(cab_size) + " bytes is over the cap");
    } else if (content_length >= 0 && cab_size != static_cast<std::uint64_t>(content_length)) {
      reject("CAB says " + std::to_string(cab_size) + " bytes but Content-Length is " +
             std::to_string(content_length));
    } else if (coff_files != 36 + 8) {
      reject("CAB file table is not right after the folder table");
    } else {
      cab_next(CabPart::kFolder);
    }
  }

  void cab_folder() {
    const char* f = cab_fixed.data();
    cab_data_start = le32(f);
    cab_blocks = le16(f + 4);
    cab_compress = le16(f + 6);
    if (cab_compress > 1) {
      reject("CAB folder compression " + std::to_string(cab_compress) +
             " (only stored and MSZIP are checked)");
    } else if (cab_blocks == 0) {
      reject("CAB folder without data");
    } else {
      cab_next(CabPart::kFile);
    }
  }

  void cab_file() {
    const char* f = cab_fixed.data();
    cab_file_size = le32(f);
    cab_name.assign(cab_fixed, 16, cab_fixed.size() - 17);
    const std::string shown = cab_name.substr(0, 64);
    if (cab_name.size() < 5 ||
        !text::iequals(std::string_view(cab_name).substr(cab_name.size() - 4), ".stl")) {
      reject("CAB holds '" + shown + "', not a certificate trust list (.stl)");
    } else if (le32(f + 4) != 0 || le16(f + 8) != 0) {
      reject("CAB file '" + shown + "' does not start its folder");
    } else if (cab_file_size == 0 || cab_file_size > limits.ctl) {
      reject("CAB file '" + shown + "' of " + std::to_string(cab_file_size) +
             " bytes (empty or over the cap)");
    } else if (cab_data_start != 36 + 8 + cab_fixed.size()) {
      reject("CAB data does not follow the file table");
    } else {
      stl = std::make_unique<Impl>();
      stl->limits = limits;
      stl->allowed = stl->allowed_now = stl->alive_mask = 1u << kStl;
      stl->cand[kStl].alive = true;
      stl->format = Format::kDer;
      stl->content_length = cab_file_size;
      stl->line_end_ok = false;
      if (cab_compress == 1) {
        zs.reset(new z_stream{});
        if (inflateInit2(zs.get(), -15) != Z_OK) {
          reject("CAB: zlib could not start");
          return;
        }
        block_out.resize(kCabBlockMax);
      }
      cab_next(CabPart::kBlockHeader);
    }
  }

  void cab_block_header() {
    const char* b = cab_fixed.data();
    cab_block_left = le16(b + 4);
    cab_block_out = le16(b + 6);
    if (cab_block_out == 0 || cab_block_out > kCabBlockMax) {
      reject("CAB data block of " + std::to_string(cab_block_out) + " bytes uncompressed");
    } else if (cab_compress == 0 && cab_block_left != cab_block_out) {
      reject("stored CAB data block whose sizes differ");
    } else if (cab_compress == 1 && cab_block_left < 3) {
      reject("MSZIP block too short");
    } else {
      ck_seen = 0;
      block_end = false;
      cab_block_have = 0;
      if (zs && cab_blocks_done > 0) {
        inflateReset(zs.get());
        inflateSetDictionary(zs.get(), history.data(), static_cast<uInt>(history.size()));
      }
      cab_next(CabPart::kBlock);
    }
  }
  std::size_t cab_block_have = 0;  // uncompressed bytes of the current block so far

  void cab_block_data(const std::uint8_t* p, std::size_t n) {
    if (!zs) {  // stored
      stl_feed(p, n);
      cab_block_have += n;
      return;
    }
    while (ck_seen < 2 && n > 0) {
      if (*p != static_cast<std::uint8_t>("CK"[ck_seen])) {
        reject("MSZIP block without its 'CK' signature");
        return;
      }
      ++ck_seen;
      ++p;
      --n;
    }
    if (n == 0) return;
    if (block_end) {
      reject("bytes after the end of an MSZIP block's deflate stream");
      return;
    }
    zs->next_in = const_cast<Bytef*>(p);
    zs->avail_in = static_cast<uInt>(n);
    zs->next_out = block_out.data() + cab_block_have;
    zs->avail_out = static_cast<uInt>(cab_block_out - cab_block_have);
    const int r = inflate(zs.get(), Z_NO_FLUSH);
    cab_block_have = cab_block_out - zs->avail_out;
    if (r == Z_STREAM_END) {
      block_end = true;
      if (zs->avail_in != 0) reject("bytes after the end of an MSZIP block's deflate stream");
    } else if (r != Z_OK && !(r == Z_BUF_ERROR && zs->avail_in == 0)) {
      reject("MSZIP data does not inflate (zlib: " + std::string(zs->msg ? zs->msg : "error") +
             ")");
    } else if (zs->avail_out == 0 && zs->avail_in != 0) {
      reject("MSZIP block inflates past its declared size");
    }
  }

  void cab_block_done() {
    if (zs) {
      if (!block_end) {
        reject("MSZIP block ends inside its deflate stream");
        return;
      }
      if (cab_block_have != cab_block_out) {
        reject("MSZIP block inflates to " + std::to_string(cab_block_have) + " bytes, not " +
               std::to_string(cab_block_out));
        return;
      }
      stl_feed(block_out.data(), cab_block_have);
      // The next block's dictionary: the last 32 KiB of output.
      history.insert(history.end(), block_out.begin(),
                     block_out.begin() + static_cast<std::ptrdiff_t>(cab_block_have));
      if (history.size() > kCabBlockMax)
        history.erase(history.begin(), history.end() - static_cast<std::ptrdiff_t>(kCabBlockMax));
    } else if (cab_block_have != cab_block_out) {
      reject("CAB data block shorter than declared");
      return;
    }
    if (state == State::kRejected) return;
    cab_unpacked += cab_block_have;
    ++cab_blocks_done;
    cab_next(cab_blocks_done == cab_blocks ? CabPart::kEnd : CabPart::kBlockHeader);
  }

  // Uncompressed bytes of the .stl, to its check.
  void stl_feed(const std::uint8_t* p, std::size_t n) {
    if (stl_fed == 0 && n > 0 && p[0] != kSeq) {
      reject("CAB file '" + cab_name.substr(0, 64) +
             "' is not a certificate trust list: it starts with " + hex_byte(p[0]) +
             ", not a DER SEQUENCE");
      return;
    }
    stl_fed += n;
    if (stl_fed > cab_file_size) {
      reject("CAB folder holds more than its one file");
      return;
    }
    stl->feed_der(p, n);
    if (stl->state == State::kRejected) stl_rejected();
  }
  void stl_rejected() {
    reject("CAB file '" + cab_name.substr(0, 64) +
           "' is not a certificate trust list: " + stl->reason);
  }

  void cab_next(CabPart part) {
    cab_part = part;
    cab_fixed.clear();
  }

  void finish_cab() {
    if (state == State::kRejected) return;
    if (cab_part != CabPart::kEnd) {
      reject(cab_part == CabPart::kHeader ? "truncated CAB header" : "truncated CAB");
    } else if (bytes != cab_size) {
      reject("CAB says " + std::to_string(cab_size) + " bytes, body has " + std::to_string(bytes));
    } else if (cab_unpacked != cab_file_size) {
      reject("CAB folder holds " + std::to_string(cab_unpacked) + " bytes, its file " +
             std::to_string(cab_file_size));
    } else {
      stl->finish_der();
      if (stl->state != State::kGenuine) {
        stl_rejected();
      } else {
        state = State::kGenuine;
        found = RevocationKind::kCtl;
      }
    }
  }

  // ---- sniffing ----

  void start_format(Format f) {
    format = f;
    unsigned mask = allowed_now;
    if (f == Format::kCab) {
      mask &= bit(RevocationKind::kCtl);
    } else {
      mask &= ~bit(RevocationKind::kCtl);
    }
    if (f == Format::kPem) {
      unsigned by_label = 0;
      if (pem_label == "X509 CRL") by_label = bit(RevocationKind::kCrl);
      // "X509 CERTIFICATE" is the label of old OpenSSL and Netscape tools; the label
      // carries no data, the base64 under it is checked as any certificate.
      if (pem_label == "CERTIFICATE" || pem_label == "X509 CERTIFICATE")
        by_label = bit(RevocationKind::kCertificate);
      if (pem_label == "PKCS7") by_label = bit(RevocationKind::kPkcs7);
      mask &= by_label;
      mask &= ~bit(RevocationKind::kOcspRequest);
      if (mask == 0) {
        reject("PEM '" + pem_label.substr(0, 40) + "' is not " + kinds_text(allowed_now));
        return;
      }
    }
    if (mask == 0) {
      reject(std::string(f == Format::kCab ? "a CAB file" : "DER data") + " is not " +
             kinds_text(allowed_now));
      return;
    }
    for (std::size_t k = 0; k < kKinds; ++k) {
      cand[k].alive = (mask & (1u << k)) != 0;
    }
    alive_mask = mask;
    allowed_now = mask;
    // PEM: the label names the kind, so its cap applies to the text from here on.
    const std::uint64_t text_cap = cap_of(mask) * 3 / 2 + 1024;
    if (f == Format::kPem && content_length >= 0 &&
        static_cast<std::uint64_t>(content_length) > text_cap) {
      reject("Content-Length " + std::to_string(content_length) + " is over the " +
             std::to_string(text_cap) + "-byte cap of PEM " + kinds_text(mask));
    }
  }

  // Returns how many bytes of `s` the sniffer consumed into its own buffer.
  void sniff_and_feed(std::string_view s) {
    if (format == Format::kSniffing) {
      std::size_t need = 64 - sniff.size();
      sniff.append(s.substr(0, need));
      std::string_view b = sniff;
      if (b[0] == 0x30) {
        start_format(Format::kDer);
      } else if (b.size() < 4 && std::string_view("MSCF").starts_with(b)) {
        return;  // need more bytes to tell
      } else if (b.size() >= 4 && b.substr(0, 4) == "MSCF") {
        start_format(Format::kCab);
      } else if (b[0] == '-') {
        std::size_t nl = b.find('\n');
        if (nl == std::string_view::npos && b.size() < 64) return;  // need the whole line
        std::string_view line = b.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.starts_with("-----BEGIN ") || !line.ends_with("-----") || line.size() < 17) {
          reject("not PEM: bad BEGIN line");
          return;
        }
        pem_label = std::string(line.substr(11, line.size() - 16));
        start_format(Format::kPem);
        if (state == State::kRejected) return;
        // Feed what follows the BEGIN line, then the rest of `s`.
        std::string rest(b.substr(nl + 1));
        sniff.clear();
        feed_pem(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size());
        if (s.size() > need)
          feed_pem(reinterpret_cast<const std::uint8_t*>(s.data()) + need, s.size() - need);
        return;
      } else {
        reject("not revocation data: " + describe_start(b));
        return;
      }
      if (state == State::kRejected) return;
      // Replay the sniffed bytes, then the rest of `s`.
      std::string buffered = std::move(sniff);
      sniff.clear();
      route(buffered);
      if (s.size() > need && state != State::kRejected) route(s.substr(need));
      return;
    }
    route(s);
  }

  void route(std::string_view s) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    switch (format) {
      case Format::kDer:
        feed_der(p, s.size());
        break;
      case Format::kPem:
        feed_pem(p, s.size());
        break;
      case Format::kCab:
        feed_cab(p, s.size());
        break;
      case Format::kSniffing:
        break;
    }
  }
};

RevocationCheck::RevocationCheck(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RevocationCheck::RevocationCheck(RevocationCheck&&) noexcept = default;
RevocationCheck& RevocationCheck::operator=(RevocationCheck&&) noexcept = default;
RevocationCheck::~RevocationCheck() = default;

RevocationCheck RevocationCheck::for_response(Verify verify, const RevocationLimits& limits) {
  auto impl = std::make_unique<Impl>();
  impl->limits = limits;
  const unsigned crl = bit(RevocationKind::kCrl), ocsp = bit(RevocationKind::kOcspResponse),
                 cert = bit(RevocationKind::kCertificate), p7 = bit(RevocationKind::kPkcs7),
                 ctl = bit(RevocationKind::kCtl);
  switch (verify) {
    case Verify::kNone:
      impl->none_reason = "rule has no verify";
      break;
    case Verify::kCrl:
      impl->allowed = crl;
      break;
    case Verify::kOcsp:
      impl->allowed = ocsp;
      break;
    case Verify::kCert:
      impl->allowed = cert | p7;
      break;
    case Verify::kCtl:
      impl->allowed = ctl;
      break;
    case Verify::kRevocation:
      impl->allowed = crl | ocsp | cert | p7 | ctl;
      break;
  }
  return RevocationCheck(std::move(impl));
}

RevocationCheck RevocationCheck::for_ocsp_request(const RevocationLimits& limits) {
  auto impl = std::make_unique<Impl>();
  impl->limits = limits;
  impl->allowed = bit(RevocationKind::kOcspRequest);
  return RevocationCheck(std::move(impl));
}

RevocationCheck::State RevocationCheck::begin(std::string_view content_type,
                                              std::string_view content_encoding,
                                              std::int64_t content_length) {
  Impl& m = *impl_;
  if (m.begun) return m.state;
  m.begun = true;
  m.content_length = content_length;
  if (!m.none_reason.empty()) {
    m.reject(m.none_reason);
    return m.state;
  }
  std::string_view enc = content_encoding;
  while (!enc.empty() && enc.back() == ' ') enc.remove_suffix(1);
  if (!enc.empty() && !text::iequals(enc, "identity")) {
    m.reject("Content-Encoding '" + std::string(enc.substr(0, 40)) +
             "' (only identity is checked)");
    return m.state;
  }
  // An OCSP request check (a body going up the hole) takes its one media type only.
  if (m.allowed == bit(RevocationKind::kOcspRequest) &&
      !text::iequals(trim_media_type(content_type), "application/ocsp-request")) {
    m.reject("Content-Type '" + std::string(content_type.substr(0, 60)) +
             "' is not application/ocsp-request");
    return m.state;
  }
  bool known = false;
  unsigned by_type = kinds_for_content_type(content_type, &known);
  if (!known) {
    m.reject("Content-Type '" + std::string(content_type.substr(0, 60)) +
             "' is not revocation data");
    return m.state;
  }
  m.allowed_now = m.allowed & by_type;
  if (m.allowed_now == 0) {
    m.reject("Content-Type '" + std::string(content_type.substr(0, 60)) + "' is not " +
             Impl::kinds_text(m.allowed));
    return m.state;
  }
  const std::uint64_t cap = m.cap_of(m.allowed_now);
  if (content_length >= 0 && static_cast<std::uint64_t>(content_length) > cap * 3 / 2 + 1024) {
    m.reject("Content-Length " + std::to_string(content_length) + " is over the " +
             std::to_string(cap) + "-byte cap");
  }
  return m.state;
}

RevocationCheck::State RevocationCheck::feed(std::string_view chunk) {
  Impl& m = *impl_;
  if (!m.begun) begin({}, {}, -1);
  if (m.state != State::kUndecided || chunk.empty()) return m.state;
  m.bytes += chunk.size();
  const std::uint64_t cap = m.cap_of(m.allowed_now);
  // PEM text is at most about 4/3 of its DER, plus line breaks.
  if (m.bytes > cap * 3 / 2 + 1024 || (m.format == Impl::Format::kDer && m.bytes > cap) ||
      (m.format == Impl::Format::kCab && m.bytes > m.limits.ctl)) {
    m.reject("body over the " + std::to_string(cap) + "-byte cap");
    return m.state;
  }
  if (m.content_length >= 0 && m.bytes > static_cast<std::uint64_t>(m.content_length)) {
    m.reject("body longer than its Content-Length");
    return m.state;
  }
  m.sniff_and_feed(chunk);
  return m.state;
}

RevocationCheck::State RevocationCheck::finish() {
  Impl& m = *impl_;
  if (!m.begun) begin({}, {}, -1);
  if (m.state != State::kUndecided) return m.state;
  if (m.content_length >= 0 && m.bytes != static_cast<std::uint64_t>(m.content_length)) {
    m.reject("body of " + std::to_string(m.bytes) + " bytes, Content-Length said " +
             std::to_string(m.content_length));
    return m.state;
  }
  switch (m.format) {
    case Impl::Format::kSniffing:
      if (m.sniff.empty()) {
        m.reject("empty body");
      } else {
        // Fewer than 64 bytes and still undecided: only a PEM BEGIN line waiting.
        m.reject("not revocation data: " + describe_start(m.sniff));
      }
      break;
    case Impl::Format::kDer:
      m.finish_der();
      break;
    case Impl::Format::kPem:
      if (m.pem_state == Impl::PemState::kEndLine) m.check_end_line();
      if (m.state == State::kRejected) break;
      if (m.pem_state != Impl::PemState::kAfter) {
        m.reject("PEM without END line");
        break;
      }
      m.finish_der();
      break;
    case Impl::Format::kCab:
      m.finish_cab();
      break;
  }
  return m.state;
}

RevocationCheck::State RevocationCheck::state() const {
  return impl_->state;
}
std::string_view RevocationCheck::reason() const {
  return impl_->reason;
}
std::uint64_t RevocationCheck::bytes() const {
  return impl_->bytes;
}

RevocationKind RevocationCheck::kind() const {
  const Impl& m = *impl_;
  if (m.state == State::kGenuine) return m.found;
  for (std::size_t k = 0; k < kKinds; ++k) {
    if (m.cand[k].alive && m.cand[k].identified) return static_cast<RevocationKind>(k);
  }
  for (std::size_t k = 0; k < kKinds; ++k) {
    if (m.cand[k].alive) return static_cast<RevocationKind>(k);
  }
  return m.found;
}

bool RevocationCheck::identified() const {
  const Impl& m = *impl_;
  if (m.state == State::kGenuine) return true;
  if (m.state != State::kUndecided || m.content_length < 0) return false;
  int identified = 0, alive = 0;
  for (std::size_t k = 0; k < kKinds; ++k) {
    alive += m.cand[k].alive;
    identified += m.cand[k].alive && m.cand[k].identified;
  }
  if (identified == 0 || alive != 1) return false;
  switch (m.format) {
    case Impl::Format::kDer:
      // Definite DER lengths: the object's end is known from its first header and is
      // exactly where Content-Length says the body ends.
      return m.der_total == static_cast<std::uint64_t>(m.content_length);
    case Impl::Format::kCab:  // the trust list is known only once inflated and walked
    case Impl::Format::kPem:  // text: its end is known only at the END line
    case Impl::Format::kSniffing:
      return false;
  }
  return false;
}

}  // namespace authbypass
