// Squid external ACL helper protocol (docs/architecture.md "Helper"): request lines in, answer
// lines out. Pure translation between Squid's wire format and the engine's RequestInput / Decision;
// no I/O. Used by ext_authbypass_acl and its tests and fuzz target.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/decision.h"
#include "authbypass/request.h"

namespace authbypass::squid {

// Longest request line accepted (bytes, without LF). Squid's URL limit is 8 KiB and a
// %#-escaped URL or User-Agent can triple; longer lines are answered ERR.
inline constexpr std::size_t kMaxLineBytes = std::size_t{64} * 1024;
// Fields of a line kept by the parser: the channel id, the longest --format (9 tokens),
// %DATA, and some to spare. A line with more is answered ERR ("extra tokens").
inline constexpr std::size_t kMaxLineFields = 16;

// One format token of the external_acl_type line.
enum class Token : std::uint8_t {
  kSrc,           // %SRC
  kMethod,        // %METHOD
  kUri,           // %URI   (Squid leaves '%' alone: taken as is, never decoded)
  kUriEsc,        // %#URI  (fully escaped: decoded exactly once)
  kUserAgent,     // %>ha{User-Agent}   (decoded once; ambiguous, prefer %#)
  kUserAgentEsc,  // %#>ha{User-Agent}
  kPath,          // %PATH  (with %>rd and %>rP stands in for %URI)
  kDomain,        // %>rd
  kPort,          // %>rP
};

// The token list the helper expects on each line, in order.
struct Format {
  std::vector<Token> tokens;

  // The documented default (docs/architecture.md "Helper"):
  // "%SRC %METHOD %#URI %#>ha{User-Agent}".
  static Format default_format();
  // Parses a space-separated list such as "%SRC %METHOD %#URI %#>ha{User-Agent}". Needs a
  // method and either a URI or a domain; each token at most once. nullopt + *error if not.
  static std::optional<Format> parse(std::string_view spec, std::string* error);
  std::string to_string() const;
};

// Whether lines start with Squid's concurrency channel id.
enum class ChannelMode : std::uint8_t {
  kAuto,  // an all-digit first token is an id (a %SRC or %METHOD never is)
  kYes,   // concurrency= is set: the first token is always the id
  kNo,    // no concurrency=: no id
};

// One parsed line. Views point into the line or into the parser's buffers and are valid
// until the next parse() call.
struct ParsedLine {
  std::string_view channel;  // the id to echo; empty if none (or not safe to echo)
  RequestInput input;
  std::string_view error;  // non-empty: the line is bad, answer ERR with this message
};

// Splits and decodes request lines. Reuses its buffers: no allocation once warm.
class LineParser {
 public:
  LineParser(Format format, ChannelMode mode);

  // Parses one line (without its LF). Never throws on any bytes.
  const ParsedLine& parse(std::string_view line);

  // For an over-long line, of which only the start is known: the channel id to echo.
  std::string_view channel_of_prefix(std::string_view line_start);

 private:
  Format format_;
  ChannelMode mode_;
  // Where each role's field sits among the format's tokens (-1: not in the format).
  enum class Role : std::uint8_t { kSrc, kMethod, kUri, kUa, kPath, kDomain, kPort, kCount };
  std::array<std::int8_t, static_cast<std::size_t>(Role::kCount)> roles_{};
  bool uri_escaped_ = false;  // the format has %#URI
  ParsedLine out_;
  std::array<std::string_view, kMaxLineFields> fields_{};
  std::string decoded_[4];  // URI, User-Agent, path, built URL
  std::string channel_;
  std::string error_text_;
  static constexpr std::size_t kUaCacheSize = 16;
  struct UaCacheEntry {
    std::string raw, decoded;
    std::uint64_t id = 0;  // RequestInput::user_agent_id of `decoded`: new for each fill
    std::uint8_t error = 0;
    bool used = false;
  };
  UaCacheEntry ua_cache_[kUaCacheSize];
  std::size_t ua_cache_next_ = 0;
  std::size_t ua_cache_last_ = 0;
};

// Appends one answer line (with LF) to `out`:
//   bypass:  "[id ]OK log=<rule-id> tag=authbypass/<rule-id>"
//   else:    "[id ]ERR"
void append_decision(std::string& out, std::string_view channel, const Decision& d);
// "[id ]ERR message="..."" for a bad line; the message is reduced to safe characters.
void append_error(std::string& out, std::string_view channel, std::string_view message);
// "[id ]BH message="..."" for an internal fault (Squid retries, then denies).
void append_broken(std::string& out, std::string_view channel, std::string_view message);

// Decodes %XX escapes once into `out` (Squid's rfc1738 escaping). False on a malformed
// escape; %00 and other bytes are decoded as they are (the caller rejects what it must).
bool rfc1738_unescape(std::string_view in, std::string& out);

// True iff `s` is well-formed UTF-8 (no overlongs, surrogates or values over U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace authbypass::squid
