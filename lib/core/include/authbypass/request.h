// The request model: one HTTP request as the engine sees it, parsed and normalized for
// matching. Adapters (Squid helper, ICAP service, CLI) fill a RequestInput from their wire
// format and call Request::parse; the engine never sees raw wire data.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "authbypass/ip.h"

namespace authbypass {

// Limits on request data. Longer values make the request malformed (it never matches).
inline constexpr std::size_t kMaxUrlLength = 8192;  // Squid's own MAX_URL
inline constexpr std::size_t kMaxUserAgentLength = 4096;
inline constexpr std::size_t kMaxMethodLength = 32;

// Raw request data, already unescaped from the transport (e.g. Squid's %# tokens decoded
// once). Empty `user_agent` or `src` means "not known".
struct RequestInput {
  std::string_view method;
  std::string_view url;  // absolute-form "http://host[:port]/path?query"; "host:port" for CONNECT
  std::string_view user_agent;
  std::string_view src;  // client address, IPv4 or IPv6 text
  // Optional: non-zero ids promise that inputs with the same id have the same user_agent
  // text (a parser that caches decoded User-Agents numbers them); 0 means "compare".
  std::uint64_t user_agent_id = 0;
};

enum class HostKind : std::uint8_t {
  kName,  // a DNS name, ASCII (non-ASCII labels converted to punycode), lower-case
  kIpv4,  // a dotted-quad IPv4 literal
  kIpv6,  // a bracketed IPv6 literal
};

// The owned part of a Request (everything but the views into its own text), so that
// Request's copies can copy it whole and then re-point the views.
struct RequestFields {
  std::string method;           // as sent (HTTP methods are case-sensitive)
  std::uint8_t method_bit = 0;  // method_bit(method): a bit for common methods, else 0
  bool is_connect = false;
  std::string scheme;  // "http" or "https", lower-case; empty for CONNECT
  std::string host;    // normalized: lower-case, one trailing dot dropped, punycode;
                       // IPv6 without brackets, canonical text
  HostKind host_kind = HostKind::kName;
  // When host_dots_known: bit i set iff host[i] == '.' (host names of at most 63 bytes);
  // otherwise not computed (readers scan `host` themselves).
  std::uint64_t host_dots = 0;
  bool host_dots_known = false;
  IpAddress host_ip;           // when host_kind is kIpv4 / kIpv6
  std::uint16_t port = 0;      // explicit port, or the scheme's default (80 / 443)
  bool match_path_ok = false;  // see Request::match_path
  // When match_path_ok is false for a parsed request that has a path: why, in a phrase
  // for explanations ("the path holds ;params"); static text. Null otherwise.
  const char* match_path_why = nullptr;

  std::optional<IpAddress> src;  // client address, when given

  std::string url;  // the URL as given, for logs

 protected:
  std::string error_;
  // The last distinct User-Agents with their lower-case form (parse() lower-cases a
  // User-Agent it saw lately only once); the current one is recent_ua_[current_ua_].
  struct RecentUa {
    std::string raw, lower;
    std::uint64_t id = 0;      // RequestInput::user_agent_id of `raw` (0: none)
    std::uint64_t serial = 0;  // see Request::user_agent_serial
  };
  std::array<RecentUa, 8> recent_ua_{};
  std::uint8_t current_ua_ = 0;
  std::uint8_t recent_ua_next_ = 1;  // the slot to fill next
  std::string match_path_buf_;       // match_path when it differs from the path as sent
};

// A parsed, normalized request. Parsing reuses the object's buffers, so a Request that is
// parsed again and again does not allocate once warm (except for non-ASCII host names).
// path, params, query, match_path, user_agent and user_agent_lower view the Request's own
// text (`url` and internal buffers): valid while the Request lives and until its next
// parse(); copies view their own text.
//
// Fields are valid only when ok() is true. A malformed request never matches any rule.
struct Request : RequestFields {
  Request() = default;
  Request(const Request& other);
  Request& operator=(const Request& other);

  // Parses `in` into this object. Returns ok(); on failure error() says why.
  bool parse(const RequestInput& in);
  // The same result as parse() by the general parser alone (parse() takes a shortcut
  // for common URLs); for tests and fuzzing, which compare the two.
  bool parse_reference(const RequestInput& in);

  bool ok() const { return error_.empty(); }
  std::string_view error() const { return error_; }

  std::string_view path;    // path as sent (no query, no ;params); "/" when absent
  std::string_view params;  // ";params" part of the path, without the ';' (may be empty)
  std::string_view query;   // query without the '?' (may be empty)
  // The path used for matching: percent-decoded once, dot-segments removed, ASCII
  // lower-cased. Empty and match_path_ok false when the path is not one path to every
  // reader, i.e. when an origin, Squid or a slash-merging or Windows file server may
  // resolve it to another file than this reading does. That is the case for a URL that
  // holds any of:
  //   - a fragment ('#' anywhere after the host: Squid forwards it as part of the path);
  //   - ';' in the path (";params": Tomcat-style servers strip them per segment, RFC 3986
  //     readers keep them, so "/a/x;/../../b" is "/b" to one and "/a/..." to the other);
  //   - an empty segment "//" (merged by nginx, Apache, IIS and Windows, kept by RFC 3986);
  //   - '\' or a byte outside printable ASCII, raw or percent-encoded;
  //   - a malformed escape, %00 or an encoded control byte;
  //   - an encoded '/', '\', '?', '#', ';' or '%' (%2F, %5C, %3F, %23, %3B, %25: servers
  //     decode them at different stages, or twice);
  //   - a segment made only of dots and spaces other than a plain "." or ".." (%2e%2e,
  //     ".%2E", "...", "..%20"): dot-segments count only when written as dots.
  // Such a request never matches a rule with path_prefix, path_suffix or path_regex (it
  // may still match rules without path criteria). The request itself is never rewritten.
  std::string_view match_path;

  std::string_view user_agent;        // as sent
  std::string_view user_agent_lower;  // ASCII lower-cased copy for literal matching
  // A number for the text of user_agent, unique in the process: two requests (parsed by
  // any Request objects, copies included) with the same serial have the same User-Agent
  // text (the same text may come with several serials). 0 is the empty User-Agent's.
  // Lets an EvalContext recognize a User-Agent without comparing its text.
  std::uint64_t user_agent_serial = 0;

 private:
  bool parse_impl(const RequestInput& in, bool shortcut);
  // The common absolute URL "http[s]://name/path[?query]" with a plain lower-case
  // name and a path with nothing to decode, in `url`: fills scheme..match_path and
  // returns true; otherwise returns false having changed nothing.
  bool parse_plain_url();
  // User-Agent and client address, the last step of parsing.
  bool parse_client(const RequestInput& in);
  // match_path = `p` lower-cased: `p` itself when it has no upper-case letter.
  void set_match_path_lower(std::string_view p);
  // match_path from the raw path `p` (no ;params, query or fragment) as the general
  // parser sees it; leaves match_path_ok false and sets match_path_why when `p` has a
  // form that readers may resolve differently (see match_path).
  void set_match_path(std::string_view p);
  // The views of `other`, re-pointed into this object's copies of its text.
  void view_like(const Request& other);
};

// A bit for each of the common HTTP methods (GET, HEAD, POST, CONNECT, PUT, DELETE,
// OPTIONS, PATCH); 0 for any other method. Lets rules compare methods without strings.
std::uint8_t method_bit(std::string_view method);

// Helpers also used by the policy loader, so that policy hosts and request hosts are
// normalized the same way. Each returns false (and sets *error) on input that is not a
// valid host name.
bool normalize_host_name(std::string_view in, std::string& out, std::string* error);

}  // namespace authbypass
