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
