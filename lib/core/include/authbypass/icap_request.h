// ICAP service wire translation (docs/architecture.md "ICAP service"): the encapsulated HTTP
// request and response header values, as c-icap hands them over, into a RequestInput for the
// engine. Pure functions, no I/O (except the shared-secret file's reader and generator at the end):
// used by srv_authbypass.so, the `authbypass` CLI, their tests and the fuzz target.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "authbypass/policy.h"
#include "authbypass/request.h"

namespace authbypass::icap {

// What the service read from one ICAP transaction (header values trimmed; nullopt when
// the header is absent).
struct EncapsulatedRequest {
  std::string_view request_line;  // "GET http://host/path HTTP/1.1" (first line only)
  std::optional<std::string_view> host;
  std::optional<std::string_view> user_agent;
  std::optional<std::string_view> client_ip;  // ICAP X-Client-IP
};

// The request as the engine sees it. `error` set (and the rest unusable) when the
// encapsulated request cannot be read; the service then blocks it.
struct Translated {
  std::string method, url, user_agent, src;
  std::string error;
  bool ok() const { return error.empty(); }
  RequestInput input() const { return RequestInput{method, url, user_agent, src}; }
};

// Splits the request line; an origin-form target ("/path") is rebuilt from Host (Squid
// sends absolute URLs; other ICAP clients may not). Values are bounded (URL 8 KiB + slack)
// so that a hostile client cannot make the service copy unbounded data.
Translated translate(const EncapsulatedRequest& r);

// Content-Length: -1 when absent; nullopt when malformed (not all digits, or too big).
std::optional<std::int64_t> content_length(std::optional<std::string_view> v);

// "HTTP/1.1 200 OK" -> 200; -1 if it is not a status line.
int status_of(std::string_view line);

// Blanks (and trailing CR/LF) trimmed from both ends.
std::string_view trim(std::string_view s);

// ---------------------------------------------------------------------------------------
// Decision mode (authbypass.Mode decide|both, docs/architecture.md "ICAP service"): the REQMOD
// service decides and marks the requests that may skip proxy authentication with
//     X-Authbypass: <shared secret> <rule-id>
// which Squid's `acl ... req_header X-Authbypass ^<secret>\s` recognizes in
// adapted_http_access. Squid never forwards the header (request_header_access).

inline constexpr std::string_view kMarkHeader = "X-Authbypass";

// True iff the header line ("Name: value", or a bare "Name:") is an X-Authbypass header:
// the name compared case-insensitively, blanks between name and colon tolerated (as
// lenient parsers such as Squid's relaxed_header_parser accept them).
bool is_mark_header(std::string_view line);

// The name of a header line as written, up to the colon (blanks before it included), or
// empty when the line has no colon. c-icap removes headers by this exact prefix.
std::string_view header_name(std::string_view line);

// The header line that marks a bypassed request: "X-Authbypass: <secret> <rule-id>".
std::string mark_header(std::string_view secret, std::string_view rule_id);

// What decision mode does with one REQMOD request.
struct MarkPlan {
  bool strip = false;   // remove every client-sent X-Authbypass line
  bool mark = false;    // add our mark (the policy bypasses the request)
  bool forged = false;  // the client sent a mark: audited as `blocked`, never marked
  bool modified() const { return strip || mark; }  // ICAP 200 with the edited request, else 204
};

// A request that arrives carrying the header was sent by a client (or by something that
// should not be there): it is stripped and never marked, whatever the policy says, even
// if the value is the right secret. Otherwise a bypass is marked and anything else left
// unchanged.
MarkPlan plan_mark(bool client_sent_mark, bool policy_bypasses);

// The rule id a mark's value ("<secret> <rule-id>") names, when the value starts with
// `secret` and one blank; nullopt otherwise (another secret, no rule id, a non-empty secret
// required). The secret is compared in constant time.
std::optional<std::string_view> marked_rule(std::string_view value, std::string_view secret);

// ---------------------------------------------------------------------------------------
// Messages that came through the hole. Squid sends the service only bypassed requests
// (adaptation_access ... authbypass, or the X-Authbypass mark): a request without
// X-Authenticated-User that reaches it was let through without authentication, by a
// decider (the helper's answer cached in Squid, or another c-icap child in decision mode)
// whose policy snapshot may differ from this one. The service never lets such a message
// through unchecked merely because its own policy now says "authenticate".

enum class HoleAction : std::uint8_t {
  kAllow,             // 204: nothing to check here (or the deciding rule has verify: none)
  kCheckOcspRequest,  // REQMOD: the body must be a DER OCSP request of at most 64 KiB
  kCheck,             // RESPMOD: the body must be what `verify` names
  kRefuse,            // 403: cannot be checked (a CONNECT tunnel no policy here bypasses)
};

struct HolePlan {
  HoleAction action = HoleAction::kAllow;
  Verify verify = Verify::kNone;  // kCheck: the check
  // The service's own policy does not bypass the request: checked (or refused) although
  // its policy would have authenticated it. Audited with that reason.
  bool disagrees = false;
};

// What the service does with an unauthenticated REQMOD (respmod false) or RESPMOD message.
// `decided`: the rule by which this service's policy bypasses the request (null: the policy
// says authenticate). `marked`: in decision mode, the rule the request's mark names, looked
// up in this service's policy (null: no mark, or a rule this policy does not have).
//   * decided: as the rule says (REQMOD: a body must be an OCSP request; RESPMOD: the
//     rule's verify, none = 204).
//   * not decided: REQMOD with a body is checked as an OCSP request; a CONNECT is refused;
//     REQMOD without a body is left to RESPMOD (204). RESPMOD is checked with the marked
//     rule's verify, or `revocation` when there is no marked rule or it has verify: none.
HolePlan plan_unauthenticated(bool respmod, bool has_body, bool is_connect, const Rule* decided,
                              const Rule* marked);

// The shared secret from its file's content: one token of 32 to 256 characters from
// [A-Za-z0-9_-] (hex or base64url, so that it is safe in a header value and, unescaped,
// in Squid's regex), optionally followed by blanks and a newline. nullopt and *error
// ("...") otherwise.
std::optional<std::string> parse_shared_secret(std::string_view content, std::string* error);

// Reads and checks the shared-secret file: a regular file, not readable or writable by
// every user (mode o-rw: it must be readable only by the c-icap and proxy users), not
// empty, at most 4 KiB, holding a valid secret (parse_shared_secret). nullopt and *error
// (naming the file and the fix) otherwise.
std::optional<std::string> read_shared_secret_file(const std::string& path, std::string* error);

// A new secret: 32 bytes from getrandom(2) (/dev/urandom if that fails), as 64 lower-case
// hex digits. Throws std::runtime_error when no randomness is available.
std::string generate_shared_secret();

}  // namespace authbypass::icap
