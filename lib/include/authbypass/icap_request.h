// ICAP service wire translation (DESIGN §4): the encapsulated HTTP request and response
// header values, as c-icap hands them over, into a RequestInput for the engine. Pure
// functions, no I/O: used by srv_authbypass.so, its tests and its fuzz target.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

// The lower-case media type of a Content-Type value (parameters and blanks dropped).
std::string media_type(std::string_view content_type);

// Blanks (and trailing CR/LF) trimmed from both ends.
std::string_view trim(std::string_view s);

}  // namespace authbypass::icap
