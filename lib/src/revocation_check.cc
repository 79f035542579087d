// Revocation-data checker: a streaming DER walker with per-kind shape patterns, a
// streaming PEM (base64) front end, and a CAB header check. See revocation_check.h.
#include "authbypass/revocation_check.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include "text.h"

namespace authbypass {

namespace {

constexpr int kMaxDepth = 24;
constexpr std::size_t kCapture = 16;  // primitive bytes kept for content checks
constexpr std::size_t kKinds = 6;

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
constexpr Pattern kAlg = {kAlgItems, 2, false};
constexpr Item kValidityItems[] = {{kUtc, kGen, false, nullptr, Check::kNone, false, false},
                                   {kUtc, kGen, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kValidity = {kValidityItems, 2, false};
// A revoked entry: serial, revocationDate, extensions.
constexpr Item kRevokedItems[] = {{kInt, 0, false, nullptr, Check::kNone, false, false},
                                  {kUtc, kGen, false, nullptr, Check::kNone, false, false},
                                  {kSeq, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kRevoked = {kRevokedItems, 3, false};
constexpr Item kRevokedListItem[] = {{kSeq, 0, false, &kRevoked, Check::kNone, false, false}};
constexpr Pattern kRevokedList = {kRevokedListItem, 1, true};

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
constexpr Pattern kCrlTbs = {kCrlTbsItems, 7, false};
constexpr Item kCrlItems[] = {{kSeq, 0, false, &kCrlTbs, Check::kNone, false, false},
                              {kSeq, 0, false, &kAlg, Check::kNone, false, false},
                              {kBits, 0, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kCrl = {kCrlItems, 3, false};

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
constexpr Pattern kCertTbs = {kCertTbsItems, 10, false};
constexpr Item kCertItems[] = {{kSeq, 0, false, &kCertTbs, Check::kNone, false, false},
                               {kSeq, 0, false, &kAlg, Check::kNone, false, false},
                               {kBits, 0, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kCert = {kCertItems, 3, false};

// OCSPResponse ::= SEQUENCE { responseStatus, responseBytes [0] EXPLICIT OPTIONAL }
constexpr Item kBasicItems[] = {{kSeq, 0, false, nullptr, Check::kNone, false, false},
                                {kSeq, 0, false, &kAlg, Check::kNone, false, false},
                                {kBits, 0, false, nullptr, Check::kNone, false, false},
                                {0xa0, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kBasic = {kBasicItems, 4, false};
constexpr Item kBasicWrapItems[] = {{kSeq, 0, false, &kBasic, Check::kNone, false, false}};
constexpr Pattern kBasicWrap = {kBasicWrapItems, 1, false};
constexpr Item kRespBytesItems[] = {{kOid, 0, false, nullptr, Check::kOidOcspBasic, true, false},
                                    {kOctets, 0, false, &kBasicWrap, Check::kNone, false, true}};
constexpr Pattern kRespBytes = {kRespBytesItems, 2, false};
constexpr Item kRespBytesWrapItems[] = {{kSeq, 0, false, &kRespBytes, Check::kNone, false, false}};
constexpr Pattern kRespBytesWrap = {kRespBytesWrapItems, 1, false};
constexpr Item kOcspItems[] = {{kEnum, 0, false, nullptr, Check::kOcspStatus, false, false},
                               {0xa0, 0, true, &kRespBytesWrap, Check::kNone, false, false}};
constexpr Pattern kOcsp = {kOcspItems, 2, false};

// ContentInfo { contentType signedData, content [0] EXPLICIT SignedData }
constexpr Item kCertListItem[] = {{kSeq, 0, false, &kCert, Check::kNone, false, false}};
constexpr Pattern kCertList = {kCertListItem, 1, true};
constexpr Item kSignedDataItems[] = {
    {kInt, 0, false, nullptr, Check::kNone, false, false},    // version
    {kSet, 0, false, nullptr, Check::kNone, false, false},    // digestAlgorithms
    {kSeq, 0, false, nullptr, Check::kNone, false, false},    // encapContentInfo
    {0xa0, 0, true, &kCertList, Check::kNone, false, false},  // certificates
    {0xa1, 0, true, nullptr, Check::kNone, false, false},     // crls
    {kSet, 0, false, nullptr, Check::kNone, false, false},    // signerInfos
};
constexpr Pattern kSignedData = {kSignedDataItems, 6, false};
constexpr Item kSignedWrapItems[] = {{kSeq, 0, false, &kSignedData, Check::kNone, false, false}};
constexpr Pattern kSignedWrap = {kSignedWrapItems, 1, false};
constexpr Item kPkcs7Items[] = {{kOid, 0, false, nullptr, Check::kOidSignedData, true, false},
                                {0xa0, 0, false, &kSignedWrap, Check::kNone, false, false}};
constexpr Pattern kPkcs7 = {kPkcs7Items, 2, false};

// OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT OPTIONAL }
constexpr Item kReqListItem[] = {{kSeq, 0, false, nullptr, Check::kNone, false, false}};
constexpr Pattern kReqList = {kReqListItem, 1, true};
constexpr Item kTbsReqItems[] = {{0xa0, 0, true, nullptr, Check::kNone, false, false},
                                 {0xa1, 0, true, nullptr, Check::kNone, false, false},
                                 {kSeq, 0, false, &kReqList, Check::kNone, true, false},
                                 {0xa2, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kTbsReq = {kTbsReqItems, 4, false};
constexpr Item kOcspReqItems[] = {{kSeq, 0, false, &kTbsReq, Check::kNone, false, false},
                                  {0xa0, 0, true, nullptr, Check::kNone, false, false}};
constexpr Pattern kOcspReq = {kOcspReqItems, 2, false};

const Pattern* root_pattern(RevocationKind k) {
  switch (k) {
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

std::string hex_byte(std::uint8_t b) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("0x") + kHex[b >> 4] + kHex[b & 15];
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

  // -- PEM --
  std::string pem_label;
  std::uint32_t b64_acc = 0;
  int b64_n = 0;     // characters in the current group of four
  int b64_bits = 0;  // bits in b64_acc not yet emitted
  bool b64_padding = false;
  enum class PemState : std::uint8_t { kBody, kEndLine, kAfter } pem_state = PemState::kBody;
  std::string pem_line;  // the END line being read
  bool pem_at_line_start = true;

  // -- CAB --
  std::array<std::uint8_t, 36> cab_hdr{};
  std::uint32_t cab_size = 0, cab_coff_files = 0;
  std::uint16_t cab_files = 0, cab_names_done = 0;
  std::string cab_entry;  // the CFFILE entry being read
  bool cab_header_ok = false;

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
        r = "not a valid " + std::string(to_string(static_cast<RevocationKind>(best))) + ": " + r;
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
      s += to_string(static_cast<RevocationKind>(i));
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
      if (format == Format::kDer && content_length >= 0 &&
          der_total != static_cast<std::uint64_t>(content_length)) {
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
        c.levels[0].pattern = root_pattern(static_cast<RevocationKind>(k));
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
      } else {
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
      if (item->identifies && item->check == Check::kNone) c.identified = true;
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
          if (prim_size != sizeof kOidSignedDataBytes ||
              std::memcmp(capture, kOidSignedDataBytes, sizeof kOidSignedDataBytes) != 0) {
            kill(k, "contentType is not signedData");
          } else {
            c.identified = true;
          }
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
        reject("bytes after the end of the DER object");
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

  void finish_der() {
    if (state == State::kRejected) return;
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
      if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
        pem_at_line_start = c == '\n';
        continue;
      }
      if (c == '-' && pem_at_line_start) {
        flush();
        pem_state = PemState::kEndLine;
        pem_line = "-";
        continue;
      }
      pem_at_line_start = false;
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

  static std::uint32_t le32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
  }
  static std::uint16_t le16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
  }

  // Called with every body byte offset; reads the header and the CFFILE names.
  void feed_cab(const std::uint8_t* p, std::size_t n, std::uint64_t offset) {
    for (std::size_t i = 0; i < n && state != State::kRejected; ++i) {
      const std::uint64_t at = offset + i;
      if (at < 36) {
        cab_hdr[at] = p[i];
        if (at == 35) check_cab_header();
        continue;
      }
      if (!cab_header_ok || cab_names_done >= cab_files || at < cab_coff_files) {
        // Skip to the file table in one step.
        if (cab_header_ok && cab_names_done < cab_files && at < cab_coff_files) {
          std::uint64_t skip = std::min<std::uint64_t>(cab_coff_files - at, n - i) - 1;
          i += static_cast<std::size_t>(skip);
        } else {
          break;  // header and names done: nothing more to look at
        }
        continue;
      }
      // Inside the CFFILE table: 16 fixed bytes, then a NUL-terminated name.
      cab_entry += static_cast<char>(p[i]);
      if (cab_entry.size() > 16 && p[i] == '\0') {
        std::string_view name(cab_entry.data() + 16, cab_entry.size() - 17);
        if (name.size() < 5 || !text::iequals(name.substr(name.size() - 4), ".stl")) {
          reject("CAB holds '" + std::string(name.substr(0, 64)) +
                 "', not a certificate trust list (.stl)");
          return;
        }
        ++cab_names_done;
        if (cab_names_done == 1)
          cand[static_cast<std::size_t>(RevocationKind::kCtl)].identified = true;
        cab_entry.clear();
      } else if (cab_entry.size() > 16 + 256) {
        reject("CAB file name too long");
        return;
      }
    }
  }

  void check_cab_header() {
    const std::uint8_t* h = cab_hdr.data();
    cab_size = le32(h + 8);
    cab_coff_files = le32(h + 16);
    cab_files = le16(h + 28);
    const std::uint16_t folders = le16(h + 26);
    if (le32(h + 4) != 0 || le32(h + 12) != 0 || le32(h + 20) != 0) {
      reject("CAB header reserved fields are not zero");
    } else if (h[24] != 3 || h[25] != 1) {
      reject("CAB version is not 1.3");
    } else if (folders == 0 || cab_files == 0 || cab_files > 64) {
      reject("CAB has no folder or an odd number of files");
    } else if (cab_size > limits.ctl) {
      reject("CAB of " + std::to_string(cab_size) + " bytes is over the cap");
    } else if (content_length >= 0 && cab_size != static_cast<std::uint64_t>(content_length)) {
      reject("CAB says " + std::to_string(cab_size) + " bytes but Content-Length is " +
             std::to_string(content_length));
    } else if (cab_coff_files < 36 || cab_coff_files >= cab_size) {
      reject("CAB file table outside the cabinet");
    } else {
      cab_header_ok = true;
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
      if (pem_label == "CERTIFICATE") by_label = bit(RevocationKind::kCertificate);
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
      route(buffered, 0);
      if (s.size() > need && state != State::kRejected) route(s.substr(need), buffered.size());
      return;
    }
    route(s, bytes - s.size());
  }

  void route(std::string_view s, std::uint64_t offset) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    switch (format) {
      case Format::kDer:
        feed_der(p, s.size());
        break;
      case Format::kPem:
        feed_pem(p, s.size());
        break;
      case Format::kCab:
        feed_cab(p, s.size(), offset);
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
  bool known = false;
  unsigned by_type = kinds_for_content_type(content_type, &known);
  if (!known) {
    m.reject("Content-Type '" + std::string(content_type.substr(0, 60)) +
             "' is not revocation data");
    return m.state;
  }
  if (m.allowed == bit(RevocationKind::kOcspRequest) &&
      !text::iequals(trim_media_type(content_type), "application/ocsp-request")) {
    m.reject("Content-Type '" + std::string(content_type.substr(0, 60)) +
             "' is not application/ocsp-request");
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
      if (!m.cab_header_ok) {
        m.reject("truncated CAB header");
      } else if (m.bytes != m.cab_size) {
        m.reject("CAB says " + std::to_string(m.cab_size) + " bytes, body has " +
                 std::to_string(m.bytes));
      } else if (m.cab_names_done < m.cab_files) {
        m.reject("CAB file table incomplete");
      } else {
        m.state = State::kGenuine;
        m.found = RevocationKind::kCtl;
      }
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
      return m.der_total == static_cast<std::uint64_t>(m.content_length);
    case Impl::Format::kCab:
      return m.cab_header_ok && m.cab_size == static_cast<std::uint64_t>(m.content_length);
    case Impl::Format::kPem:
      return true;  // the PEM size was capped at begin(); the DER total at its header
    case Impl::Format::kSniffing:
      return false;
  }
  return false;
}

}  // namespace authbypass
