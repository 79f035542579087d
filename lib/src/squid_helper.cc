#include "authbypass/squid_helper.h"

#include <array>
#include <atomic>
#include <bit>
#include <cstring>

#include "authbypass/policy.h"
#include "text.h"

namespace authbypass::squid {

namespace {

constexpr std::size_t kMaxChannelIdDigits = 20;

struct TokenName {
  std::string_view text;
  Token token;
};
constexpr TokenName kTokenNames[] = {
    {"%SRC", Token::kSrc},
    {"%METHOD", Token::kMethod},
    {"%URI", Token::kUri},
    {"%#URI", Token::kUriEsc},
    {"%>ha{User-Agent}", Token::kUserAgent},
    {"%#>ha{User-Agent}", Token::kUserAgentEsc},
    {"%PATH", Token::kPath},
    {"%>rd", Token::kDomain},
    {"%>rP", Token::kPort},
};

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > kMaxChannelIdDigits) return false;
  for (char c : s)
    if (!text::is_digit(c)) return false;
  return true;
}

// Squid's channel ids are decimal; anything else is echoed only if it cannot break the
// answer line (then Squid at least sees the error for the right request).
bool safe_to_echo(std::string_view s) {
  if (s.empty() || s.size() > kMaxChannelIdDigits) return false;
  for (char c : s)
    if (!(text::is_digit(c) || text::is_alpha(c))) return false;
  return true;
}

// Splits on spaces (memchr per field: fields are long, and memchr is vectorized).
void split_fields(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i >= line.size()) break;
    std::size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    out.push_back(line.substr(i, j - i));
    i = j;
  }
}

// Splits a request line on spaces into out[0..kMaxLineFields) and returns the number of
// fields (which may exceed the array: only the first ones are kept); *nul tells whether
// the line holds a NUL byte. One pass, 16 bytes per step.
std::size_t split_line(std::string_view line, std::string_view* out, bool* nul) {
  const char* const s = line.data();
  const std::size_t n = line.size();
  std::size_t count = 0;
  std::size_t start = 0;
  auto field_ends_at = [&](std::size_t end) {
    if (end > start) {
      if (count < kMaxLineFields) out[count] = std::string_view(s + start, end - start);
      ++count;
    }
    start = end + 1;
  };
  bool zero = false;
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(' ');
  const __m128i nil = _mm_setzero_si128();
  int zeros = 0;
  auto block = [&](std::size_t at, unsigned skip) {  // bytes at..at+15, the first `skip` seen
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
    auto spaces = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, space))) >> skip;
    zeros |= _mm_movemask_epi8(_mm_cmpeq_epi8(x, nil)) >> skip;
    while (spaces != 0) {
      field_ends_at(at + skip + static_cast<std::size_t>(__builtin_ctz(spaces)));
      spaces &= spaces - 1;
    }
  };
  if (n >= 64) {
    // 64 bytes per step (fewer loop exits than per 16 bytes), the rest as the 64 bytes
    // that end the line with the bits already seen shifted out.
    // NUL bytes: the byte-wise minimum of every block read (the last block overlaps the
    // one before, but every byte of it is in the line), tested once at the end.
    __m128i low = _mm_set1_epi8(-1);
    auto masks = [&](const char* p) {
      std::uint64_t sp = 0;
      for (int k = 0; k < 4; ++k) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
        sp |= static_cast<std::uint64_t>(
                  static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, space))))
              << (16 * k);
        low = _mm_min_epu8(low, x);
      }
      return sp;
    };
    auto emit = [&](std::size_t at, std::uint64_t sp) {
      while (sp != 0) {
        field_ends_at(at + static_cast<std::size_t>(__builtin_ctzll(sp)));
        sp &= sp - 1;
      }
    };
    for (; i + 64 <= n; i += 64) emit(i, masks(s + i));
    if (i < n) {
      const unsigned seen = static_cast<unsigned>(64 - (n - i));
      emit(i, masks(s + n - 64) >> seen);
      i = n;
    }
    zeros |= _mm_movemask_epi8(_mm_cmpeq_epi8(low, nil));
  } else {
    for (; i + 16 <= n; i += 16) block(i, 0);
    if (i < n && n >= 16) {  // the rest, as the 16 bytes that end the line
      block(n - 16, static_cast<unsigned>(16 - (n - i)));
      i = n;
    }
  }
  zero = zeros != 0;
#endif
  for (; i < n; ++i) {
    if (s[i] == ' ') {
      field_ends_at(i);
    } else if (s[i] == '\0') {
      zero = true;
    }
  }
  field_ends_at(n);
  *nul = zero;
  return count;
}

enum class TokenError : std::uint8_t { kNone, kEscape, kControl, kUtf8 };

// Byte classes for decode_token: 0 plain, 1 '%', 2 control (< 0x20, 0x7f), 3 non-ASCII.
constexpr std::array<std::uint8_t, 256> kByteClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = c == '%' ? 1 : (c < 0x20 || c == 0x7f) ? 2 : c >= 0x80 ? 3 : 0;
  }
  return t;
}();

// One pass over a token: decodes %XX once (if `unescape`), refuses control bytes (raw or
// decoded) and, when non-ASCII bytes occur, invalid UTF-8. `out` views `buf`.
TokenError decode_token(std::string_view in, bool unescape, std::string& buf,
                        std::string_view& out) {
  // Most tokens hold nothing to decode or refuse: then `out` is `in` itself.
  const std::size_t clean = text::find_token_special(in.data(), in.size());
  if (clean == in.size()) {
    out = in;
    return TokenError::kNone;
  }
  if (buf.size() < in.size()) buf.resize(in.size());  // grows only: no fill once warm
  std::memcpy(buf.data(), in.data(), clean);
  char* w = buf.data() + clean;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data()) + clean;
  const auto* const e = reinterpret_cast<const unsigned char*>(in.data()) + in.size();
  bool non_ascii = false;
  while (p < e) {
    // Eight bytes at a time up to the next byte that is not plain. In each mask the
    // lowest flagged byte is exact (false positives only sit above a true one).
    if (e - p >= 8) {
      constexpr std::uint64_t ones = 0x0101010101010101ull;
      constexpr std::uint64_t high = 0x8080808080808080ull;
      std::uint64_t x;
      std::memcpy(&x, p, 8);
      const std::uint64_t pct = x ^ (0x25 * ones), del = x ^ (0x7f * ones);
      const std::uint64_t m = (x & high) | ((x - 0x20 * ones) & ~x & high) |
                              ((pct - ones) & ~pct & high) | ((del - ones) & ~del & high);
      std::memcpy(w, p, 8);  // in bounds: w never runs ahead of p's offset
      if (m == 0) {
        p += 8;
        w += 8;
        continue;
      }
      const auto k = static_cast<std::size_t>(std::countr_zero(m) / 8);
      p += k;
      w += k;
    }
    unsigned char c = *p;
    std::uint8_t k = kByteClass[c];
    if (k == 0) {
      *w++ = static_cast<char>(c);
      ++p;
      continue;
    }
    if (k == 1 && unescape) {
      if (e - p < 3) return TokenError::kEscape;
      int hi = text::hex_value(static_cast<char>(p[1]));
      int lo = text::hex_value(static_cast<char>(p[2]));
      if (hi < 0 || lo < 0) return TokenError::kEscape;
      c = static_cast<unsigned char>(hi * 16 + lo);
      k = kByteClass[c] == 1 ? 0 : kByteClass[c];
      p += 3;
    } else {
      ++p;
    }
    if (k == 2) return TokenError::kControl;
    non_ascii = non_ascii || k == 3;
    *w++ = static_cast<char>(c);
  }
  out = std::string_view(buf.data(), static_cast<std::size_t>(w - buf.data()));
  if (non_ascii && !valid_utf8(out)) return TokenError::kUtf8;
  return TokenError::kNone;
}

void append_message(std::string& out, std::string_view message) {
  out += " message=\"";
  std::size_t n = 0;
  for (char c : message) {
    if (++n > 200) break;
    auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') ? c : '?';
  }
  out += '"';
}

// Ids for decoded User-Agents, unique in the process (every parser draws from here).
std::uint64_t next_user_agent_id() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

void append_channel(std::string& out, std::string_view channel) {
  if (!channel.empty()) {
    out += channel;
    out += ' ';
  }
}

}  // namespace

Format Format::default_format() {
  return Format{{Token::kSrc, Token::kMethod, Token::kUriEsc, Token::kUserAgentEsc}};
}

std::optional<Format> Format::parse(std::string_view spec, std::string* error) {
  Format f;
  std::vector<std::string_view> words;
  split_fields(spec, words);
  bool seen[std::size(kTokenNames)] = {};
  for (std::string_view w : words) {
    std::size_t k = 0;
    while (k < std::size(kTokenNames) && kTokenNames[k].text != w) ++k;
    if (k == std::size(kTokenNames)) {
      if (error) {
        *error = "unknown format token '" + std::string(w) +
                 "' (known: %SRC %METHOD %URI %#URI %>ha{User-Agent} %#>ha{User-Agent} "
                 "%PATH %>rd %>rP)";
      }
      return std::nullopt;
    }
    if (seen[k]) {
      if (error) *error = "format token '" + std::string(w) + "' given twice";
      return std::nullopt;
    }
    seen[k] = true;
    f.tokens.push_back(kTokenNames[k].token);
  }
  auto has = [&](Token t) {
    for (Token x : f.tokens)
      if (x == t) return true;
    return false;
  };
  const bool uri = has(Token::kUri) || has(Token::kUriEsc);
  if (!has(Token::kMethod)) {
    if (error) *error = "format needs %METHOD";
    return std::nullopt;
  }
  if (!uri && !has(Token::kDomain)) {
    if (error) *error = "format needs %#URI (or %>rd with %>rP and %PATH)";
    return std::nullopt;
  }
  if (has(Token::kUri) && has(Token::kUriEsc)) {
    if (error) *error = "format has both %URI and %#URI";
    return std::nullopt;
  }
  if (has(Token::kUserAgent) && has(Token::kUserAgentEsc)) {
    if (error) *error = "format has both %>ha{User-Agent} and %#>ha{User-Agent}";
    return std::nullopt;
  }
  return f;
}

std::string Format::to_string() const {
  std::string s;
  for (Token t : tokens) {
    for (const TokenName& n : kTokenNames) {
      if (n.token == t) {
        if (!s.empty()) s += ' ';
        s += n.text;
      }
    }
  }
  return s;
}

bool rfc1738_unescape(std::string_view in, std::string& out) {
  return text::percent_decode(in, out, /*allow_nul=*/true);
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    const std::size_t len = text::utf8_sequence(s, i, &cp);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

LineParser::LineParser(Format format, ChannelMode mode) : format_(std::move(format)), mode_(mode) {
  for (std::string& s : decoded_) s.reserve(1024);
  roles_.fill(-1);
  // The last token of a role wins, and any %#URI makes the URI escaped (Format::parse
  // refuses repeats; a hand-built Format keeps these rules).
  for (std::size_t k = 0; k < format_.tokens.size() && k < kMaxLineFields; ++k) {
    Role r = Role::kSrc;
    switch (format_.tokens[k]) {
      case Token::kSrc:
        r = Role::kSrc;
        break;
      case Token::kMethod:
        r = Role::kMethod;
        break;
      case Token::kUri:
        r = Role::kUri;
        break;
      case Token::kUriEsc:
        r = Role::kUri;
        uri_escaped_ = true;
        break;
      case Token::kUserAgent:
      case Token::kUserAgentEsc:
        r = Role::kUa;
        break;
      case Token::kPath:
        r = Role::kPath;
        break;
      case Token::kDomain:
        r = Role::kDomain;
        break;
      case Token::kPort:
        r = Role::kPort;
        break;
    }
    roles_[static_cast<std::size_t>(r)] = static_cast<std::int8_t>(k);
  }
}

std::string_view LineParser::channel_of_prefix(std::string_view line_start) {
  if (mode_ == ChannelMode::kNo) return {};
  std::size_t sp = line_start.find(' ');
  if (sp == std::string_view::npos) return {};
  std::string_view first = line_start.substr(0, sp);
  if (mode_ == ChannelMode::kAuto ? all_digits(first) : safe_to_echo(first)) {
    channel_.assign(first);
    return channel_;
  }
  return {};
}

const ParsedLine& LineParser::parse(std::string_view line) {
  out_.channel = {};  // field by field: no block fill per line
  out_.input = RequestInput{};
  out_.error = {};
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  bool nul = false;
  const std::size_t count = split_line(line, fields_.data(), &nul);
  const std::size_t n = format_.tokens.size();

  // The channel id, then exactly the format's tokens, then at most one %DATA token.
  std::size_t first = 0;
  switch (mode_) {
    case ChannelMode::kYes:
      if (count == 0) {
        out_.error = "empty line";
        return out_;
      }
      if (safe_to_echo(fields_[0])) out_.channel = fields_[0];
      if (!all_digits(fields_[0])) {
        out_.error = "channel id is not a number";
        return out_;
      }
      first = 1;
      break;
    case ChannelMode::kAuto:
      // An all-digit first token is an id, unless the format itself may start with one
      // (%>rP); then only when the line has a token to spare.
      if (count != 0 && all_digits(fields_[0]) &&
          (format_.tokens.front() != Token::kPort || count >= n + 1)) {
        out_.channel = fields_[0];
        first = 1;
      }
      break;
    case ChannelMode::kNo:
      break;
  }
  const std::size_t have = count - first;
  if (nul) {
    out_.error = "line contains a NUL byte";
    return out_;
  }
  if (have < n) {
    out_.error = count == 0 ? "empty line" : "missing tokens for the helper's --format";
    return out_;
  }
  if (have > n + 1) {
    out_.error = "extra tokens after the helper's --format and %DATA";
    return out_;
  }

  // Each role's field by the index computed from the format (no per-token dispatch).
  auto field = [&](Role r) {
    const int k = roles_[static_cast<std::size_t>(r)];
    return k < 0 ? std::string_view{} : fields_[first + static_cast<std::size_t>(k)];
  };
  std::string_view src = field(Role::kSrc), method = field(Role::kMethod), uri = field(Role::kUri),
                   ua = field(Role::kUa), path = field(Role::kPath), domain = field(Role::kDomain),
                   port = field(Role::kPort);
  const bool uri_escaped = uri_escaped_;
  if (method == "-" || method.empty()) {
    out_.error = "no method";
    return out_;
  }
  if (src == "-") src = {};
  if (ua == "-") ua = {};

  std::string& uri_buf = decoded_[0];
  std::string& ua_buf = decoded_[1];
  std::string& path_buf = decoded_[2];
  std::string& url_buf = decoded_[3];
  auto fail = [this](TokenError e, const char* what) -> const ParsedLine& {
    static constexpr const char* kEscapeMsg[] = {"", "invalid % escape in ", "control byte in ",
                                                 "invalid UTF-8 in "};
    error_text_.assign(kEscapeMsg[static_cast<int>(e)]).append(what);
    out_.error = error_text_;
    return out_;
  };

  if (!uri.empty() && uri != "-") {
    if (TokenError e = decode_token(uri, uri_escaped, uri_buf, uri); e != TokenError::kNone)
      return fail(e, "URI");
  } else if (!domain.empty() && domain != "-") {
    // Rebuild an absolute URL from %>rd, %>rP and %PATH.
    std::string_view p;
    if (!path.empty() && path != "-") {
      if (TokenError e = decode_token(path, true, path_buf, p); e != TokenError::kNone)
        return fail(e, "PATH");
    }
    const bool connect = method == "CONNECT";
    url_buf.assign(connect ? "" : "http://").append(domain);
    if (!port.empty() && port != "-") url_buf.append(":").append(port);
    if (!connect) url_buf.append(p.empty() ? std::string_view("/") : p);
    if (TokenError e = decode_token(url_buf, false, uri_buf, uri); e != TokenError::kNone)
      return fail(e, "URI");
  } else {
    out_.error = "no URI";
    return out_;
  }
  std::uint64_t ua_id = 0;
  if (!ua.empty()) {
    // A proxy sees few distinct User-Agents: decode each once and keep the last few.
    UaCacheEntry* hit = nullptr;
    if (UaCacheEntry& last = ua_cache_[ua_cache_last_]; last.used && last.raw == ua) {
      hit = &last;
    } else {
      for (UaCacheEntry& c : ua_cache_) {
        if (c.used && c.raw == ua) {
          hit = &c;
          break;
        }
      }
    }
    if (hit != nullptr) {
      ua_cache_last_ = static_cast<std::size_t>(hit - ua_cache_);
    } else {
      ua_cache_last_ = ua_cache_next_;
      hit = &ua_cache_[ua_cache_next_];
      ua_cache_next_ = (ua_cache_next_ + 1) % kUaCacheSize;
      std::string_view decoded;
      hit->error = static_cast<std::uint8_t>(decode_token(ua, true, ua_buf, decoded));
      hit->raw.assign(ua);
      hit->decoded.assign(decoded);
      hit->id = next_user_agent_id();
      hit->used = true;
    }
    if (hit->error != 0) return fail(static_cast<TokenError>(hit->error), "User-Agent");
    ua = hit->decoded;
    ua_id = hit->id;
  }
  out_.input = RequestInput{method, uri, ua, src, ua_id};
  return out_;
}

void append_decision(std::string& out, std::string_view channel, const Decision& d) {
  // One append of a line built on the stack (the common case: short ids).
  char line[256];
  std::size_t n = 0;
  auto put = [&](std::string_view s) {
    std::memcpy(line + n, s.data(), s.size());
    n += s.size();
  };
  const bool ok = d.bypass() && d.rule != nullptr;
  const std::size_t id = ok ? d.rule->id.size() : 0;
  if (channel.size() + 2 * id + 32 > sizeof line) {  // long ids: piecewise
    append_channel(out, channel);
    if (ok) {
      out.append("OK log=").append(d.rule->id).append(" tag=authbypass/").append(d.rule->id);
      out += '\n';
    } else {
      out += "ERR\n";
    }
    return;
  }
  if (!channel.empty()) {
    put(channel);
    line[n++] = ' ';
  }
  if (ok) {
    put("OK log=");
    put(d.rule->id);
    put(" tag=authbypass/");
    put(d.rule->id);
    line[n++] = '\n';
  } else {
    put("ERR\n");
  }
  out.append(line, n);
}

void append_error(std::string& out, std::string_view channel, std::string_view message) {
  append_channel(out, channel);
  out += "ERR";
  append_message(out, message);
  out += '\n';
}

void append_broken(std::string& out, std::string_view channel, std::string_view message) {
  append_channel(out, channel);
  out += "BH";
  append_message(out, message);
  out += '\n';
}

}  // namespace authbypass::squid
