// Revocation-data checker (docs/architecture.md "ICAP service"): is this HTTP body really a CRL, an
// OCSP answer, a certificate, a PKCS#7 certs-only bundle or a CAB trust list? Fed incrementally
// (headers, then body chunks in order), in memory that does not grow with the body. No I/O.
//
// It walks the DER structure (definite minimal lengths, the outer object exactly filling
// the body, the expected tags and OIDs of each kind); PEM forms are base64-decoded on the
// fly into the same walker. A PKCS#7 SignedData passes only as a certs-only bundle (no
// digest algorithms, content type id-data with no or empty content, no signerInfos). A
// CAB passes only as one folder holding one *.stl file, stored or MSZIP, whose inflated
// bytes are a SignedData carrying a certificate trust list (szOID_CTL). Tolerated, as
// Windows accepts them and too narrow to carry data: one line ending ("\n" or "\r\n")
// after a DER object, the PEM label "X509 CERTIFICATE", a few blank bytes after a PEM END
// line. PEM's base64 lines are read as an encoder writes them: line breaks only (all LF
// or all CRLF), no line wider than the first (76 at most), only the last narrower; no
// spaces, tabs or blank lines, which could carry data. BER (indefinite lengths) is
// refused. The Content-Type only narrows which kinds are possible; the bytes decide.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "authbypass/policy.h"

namespace authbypass {

// The kinds of object the checker recognizes.
enum class RevocationKind : std::uint8_t {
  kCrl,           // X.509 CertificateList
  kOcspResponse,  // OCSPResponse
  kCertificate,   // X.509 Certificate
  kPkcs7,         // PKCS#7 / CMS SignedData as a certs-only bundle (.p7c, .p7b)
  kCtl,           // Microsoft CAB holding a signed certificate trust list (.stl)
  kOcspRequest,   // OCSPRequest (REQMOD: the body of an OCSP POST)
};
std::string_view to_string(
    RevocationKind k);  // "crl", "ocsp", "cert", "pkcs7", "ctl", "ocsp-request"

// Size caps per kind (bytes), defaults as documented (docs/architecture.md "ICAP service");
// Windows itself stops at 100 MiB.
struct RevocationLimits {
  std::uint64_t ocsp = 64ull * 1024;           // OCSP responses and requests
  std::uint64_t cert = 100ull * 1000;          // certificates and PKCS#7 bundles
  std::uint64_t crl = 100ull * 1024 * 1024;  // CRLs
  std::uint64_t ctl = 100ull * 1024 * 1024;  // CAB trust lists
};

// One check of one body. Not thread-safe; cheap to create (one per transaction).
class RevocationCheck {
 public:
  enum class State : std::uint8_t {
    kUndecided,  // good so far; more bytes (or finish()) needed
    kGenuine,    // finish() saw a complete, well-formed object of an allowed kind
    kRejected,   // not (or not only) revocation data of an allowed kind; see reason()
  };

  // A check for a response body under a rule's `verify` (kNone is not a check: every
  // body is rejected with reason "rule has no verify"; callers skip the check instead).
  static RevocationCheck for_response(Verify verify, const RevocationLimits& limits = {});
  // A check for a request body (OCSP POST): only a DER OCSPRequest sent as
  // application/ocsp-request, at most limits.ocsp.
  static RevocationCheck for_ocsp_request(const RevocationLimits& limits = {});

  RevocationCheck(RevocationCheck&&) noexcept;
  RevocationCheck& operator=(RevocationCheck&&) noexcept;
  ~RevocationCheck();

  // The HTTP headers: Content-Type and Content-Encoding as sent (empty if absent) and
  // Content-Length (-1 if absent). Call once, before feed(). May reject at once
  // (a content type that is not revocation data, an encoding other than identity, a
  // declared length over the cap).
  State begin(std::string_view content_type, std::string_view content_encoding,
              std::int64_t content_length);
  // The next body bytes. Rejects as soon as the bytes allow. After a rejection, further
  // calls are ignored.
  State feed(std::string_view chunk);
  // End of body: kGenuine only if the object is complete and nothing follows it.
  State finish();

  State state() const;
  // For kRejected: why, in words for the audit log ("not DER: starts with '<' (HTML?)").
  std::string_view reason() const;
  // True once the bytes seen identify one allowed kind by its structure (tags, OIDs),
  // nothing seen contradicts it, and the object's declared size fits the cap and is
  // exactly Content-Length (which must be present). This is the "preview" verdict: enough
  // to let the rest stream past unchecked (Verify preview mode). Only DER whose first
  // header gives its end can be identified before that end: never PEM, a CAB trust list,
  // DER followed by a line ending, or a PKCS#7 bundle before its (empty) signerInfos.
  bool identified() const;
  // The kind recognized so far (meaningful when identified() or kGenuine).
  RevocationKind kind() const;
  std::uint64_t bytes() const;  // body bytes fed so far

 private:
  struct Impl;
  explicit RevocationCheck(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace authbypass
