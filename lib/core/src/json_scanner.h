// A JSON scanner for the flat objects authbypass writes (audit lines, stats snapshots):
// strings (escapes decoded, views into the input when there are none), integers, and any
// other value skipped with bounded nesting. Internal to the library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "text.h"

namespace authbypass {

// Appends code point `cp` as UTF-8.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

class JsonScanner {
 public:
  explicit JsonScanner(std::string_view s) : s_(s) {}

  bool ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
    return i_ < s_.size();
  }
  bool eat(char c) {
    if (!ws() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  bool peek(char c) { return ws() && s_[i_] == c; }
  bool at_end() {
    ws();
    return i_ == s_.size();
  }

  // A string at the cursor: a view into the line when it has no escapes, else decoded
  // into `buf`.
  bool string(std::string_view& out, std::string& buf) {
    if (!eat('"')) return false;
    const std::size_t start = i_;
    // Two vectorized scans (the closing quote, then a backslash before it) instead of
    // find_first_of, which calls memchr once per byte.
    std::size_t q = s_.find('"', i_);
    if (q == std::string_view::npos) return false;
    std::size_t bs = s_.substr(start, q - start).find('\\');
    if (bs == std::string_view::npos) {
      out = s_.substr(start, q - start);
      i_ = q + 1;
      return true;
    }
    q = start + bs;
    buf.assign(s_.substr(start, q - start));
    i_ = q;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') {
        out = buf;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        buf += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"':
          buf += '"';
          break;
        case '\\':
          buf += '\\';
          break;
        case '/':
          buf += '/';
          break;
        case 'b':
          buf += '\b';
          break;
        case 'f':
          buf += '\f';
          break;
        case 'n':
          buf += '\n';
          break;
        case 'r':
          buf += '\r';
          break;
        case 't':
          buf += '\t';
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp <= 0xdbff) {
            std::uint32_t lo = 0;
            if (i_ + 1 < s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
              i_ += 2;
              if (!hex4(lo) || lo < 0xdc00 || lo > 0xdfff) return false;
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else {
              cp = 0xfffd;
            }
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            cp = 0xfffd;
          }
          append_utf8(buf, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  bool number(std::int64_t& out) {
    ws();
    std::size_t j = i_;
    bool neg = j < s_.size() && s_[j] == '-';
    if (neg) ++j;
    std::int64_t v = 0;
    std::size_t d0 = j;
    while (j < s_.size() && text::is_digit(s_[j])) {
      if (v > (INT64_MAX - 9) / 10) return false;
      v = v * 10 + (s_[j] - '0');
      ++j;
    }
    if (j == d0) return false;
    // Fractions and exponents are accepted and dropped.
    while (j < s_.size() && (text::is_digit(s_[j]) || s_[j] == '.' || s_[j] == 'e' ||
                             s_[j] == 'E' || s_[j] == '+' || s_[j] == '-'))
      ++j;
    i_ = j;
    out = neg ? -v : v;
    return true;
  }

  // An unsigned decimal integer and nothing else (no sign, fraction or exponent); false on
  // anything else or past 2^64-1.
  bool unsigned_integer(std::uint64_t& out) {
    ws();
    std::size_t j = i_;
    std::uint64_t v = 0;
    for (; j < s_.size() && text::is_digit(s_[j]); ++j) {
      const auto d = static_cast<std::uint64_t>(s_[j] - '0');
      if (v > (UINT64_MAX - d) / 10) return false;
      v = v * 10 + d;
    }
    if (j == i_ || (j < s_.size() && (s_[j] == '.' || s_[j] == 'e' || s_[j] == 'E'))) return false;
    i_ = j;
    out = v;
    return true;
  }

  // Skips any value (bounded nesting).
  bool skip_value(int depth = 0) {
    if (depth > 32 || !ws()) return false;
    char c = s_[i_];
    if (c == '"') {
      std::string_view v;
      return string(v, scratch_);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      if (eat(close)) return true;
      for (;;) {
        if (c == '{') {
          std::string_view k;
          if (!string(k, scratch_) || !eat(':')) return false;
        }
        if (!skip_value(depth + 1)) return false;
        if (eat(',')) continue;
        return eat(close);
      }
    }
    for (std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return true;
      }
    }
    std::int64_t n = 0;
    return number(n);
  }

 private:
  bool hex4(std::uint32_t& cp) {
    if (i_ + 4 > s_.size()) return false;
    cp = 0;
    for (int k = 0; k < 4; ++k) {
      int h = text::hex_value(s_[i_++]);
      if (h < 0) return false;
      cp = cp * 16 + static_cast<std::uint32_t>(h);
    }
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::string scratch_;
};

}  // namespace authbypass
