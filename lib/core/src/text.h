// ASCII helpers shared by the engine's parsers. Locale-independent.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace authbypass::text {

constexpr char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}
constexpr char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
}
constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
constexpr bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
// Appends the `n` bytes at `bytes` to `out` as lower-case hex, two digits a byte.
inline void append_hex(std::string& out, const unsigned char* bytes, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + 2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 15];
  }
}
// The first and the last word of the n >= 4 bytes at p: 8 bytes each when n >= 8 (they
// overlap when n < 16), else 4 bytes each zero-extended. Fixed-size copies: plain loads.
inline void load_end_words(const char* p, std::size_t n, std::uint64_t& first,
                           std::uint64_t& last) {
  if (n >= 8) {
    std::memcpy(&first, p, 8);
    std::memcpy(&last, p + n - 8, 8);
    return;
  }
  std::uint32_t a;
  std::uint32_t b;
  std::memcpy(&a, p, 4);
  std::memcpy(&b, p + n - 4, 4);
  first = a;
  last = b;
}
constexpr bool is_ctl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

// Length (2-4) of the well-formed UTF-8 sequence at s[i], with its code point in *cp: no
// overlong form, surrogate or value over U+10FFFF. 0 if there is none there (also for ASCII).
inline std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t* cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  std::uint32_t v = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    v = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    v = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    v = (v << 6) | (cc & 0x3f);
  }
  if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) ||
      (v >= 0xd800 && v <= 0xdfff))
    return 0;
  *cp = v;
  return len;
}

// True when `s` is well-formed UTF-8 (utf8_sequence at every byte from 0x80 on).
inline bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    const std::size_t len = utf8_sequence(s, i, &cp);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// Decodes %XX escapes once into `out`. False on a malformed escape, and on %00 unless
// `allow_nul`.
inline bool percent_decode(std::string_view in, std::string& out, bool allow_nul) {
  out.resize(in.size());
  std::size_t w = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      if (c == '\0' && !allow_nul) return false;
      i += 2;
    }
    out[w++] = c;
  }
  out.resize(w);
  return true;
}

// A set of bytes for one-pass searches (std::string_view::find_first_of calls memchr
// once per input byte).
class ByteSet {
 public:
  constexpr explicit ByteSet(std::string_view chars) {
    for (char c : chars) bits_[static_cast<unsigned char>(c)] = true;
  }
  constexpr bool has(char c) const { return bits_[static_cast<unsigned char>(c)]; }
  // Index of the first byte of `s` in the set, or npos.
  constexpr std::size_t find_in(std::string_view s) const {
    for (std::size_t i = 0; i < s.size(); ++i)
      if (has(s[i])) return i;
    return std::string_view::npos;
  }

 private:
  std::array<bool, 256> bits_{};
};

// ASCII lower-casing of 8 bytes at once; bytes >= 0x80 are left alone.
inline std::uint64_t lower8(std::uint64_t x) {
  constexpr std::uint64_t ones = 0x0101010101010101ull;
  constexpr std::uint64_t high = 0x8080808080808080ull;
  std::uint64_t low7 = x & ~high;
  std::uint64_t ge_a = low7 + (0x80 - 'A') * ones;  // high bit: byte >= 'A'
  std::uint64_t gt_z = low7 + (0x7f - 'Z') * ones;  // high bit: byte > 'Z'
  std::uint64_t upper = (ge_a ^ gt_z) & ~x & high;
  return x | (upper >> 2);
}

// True iff `s` holds a byte <= 0x20 or 0x7f. Eight bytes per step.
inline bool has_space_or_control(std::string_view s) {
  constexpr std::uint64_t ones = 0x0101010101010101ull;
  constexpr std::uint64_t high = 0x8080808080808080ull;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    std::uint64_t y = x ^ (0x7f * ones);
    // bytes < 0x21 (high bit clear) or == 0x7f; non-ASCII bytes are excluded by ~x.
    if ((((x - 0x21 * ones) | (y - ones)) & ~x & high) != 0) break;
  }
  for (; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

// s[0..n) == t[0..n). Short runs (up to 16 bytes: methods, host names, path suffixes) are
// compared inline (two overlapping words from 4 bytes on), the rest with memcmp.
inline bool same_bytes(const char* s, const char* t, std::size_t n) {
  if (n >= 8 && n <= 16) {
    std::uint64_t a, b, c, d;
    std::memcpy(&a, s, 8);
    std::memcpy(&b, s + n - 8, 8);
    std::memcpy(&c, t, 8);
    std::memcpy(&d, t + n - 8, 8);
    return ((a ^ c) | (b ^ d)) == 0;
  }
  if (n >= 4 && n < 8) {
    std::uint32_t a, b, c, d;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + n - 4, 4);
    std::memcpy(&c, t, 4);
    std::memcpy(&d, t + n - 4, 4);
    return ((a ^ c) | (b ^ d)) == 0;
  }
  if (n < 4) {
    for (std::size_t i = 0; i < n; ++i)
      if (s[i] != t[i]) return false;
    return true;
  }
  return std::memcmp(s, t, n) == 0;
}
inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && same_bytes(s.data(), prefix.data(), prefix.size());
}
inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         same_bytes(s.data() + s.size() - suffix.size(), suffix.data(), suffix.size());
}
inline bool equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && same_bytes(a.data(), b.data(), a.size());
}
// dst = src, skipping the copy when dst already holds it (a method, a scheme: mostly the
// same from one request to the next).
inline void assign_if_changed(std::string& dst, std::string_view src) {
  if (!equal(dst, src)) dst.assign(src);
}

#if defined(__SSE2__)
// 0xff in each byte of `x` that is an ASCII upper-case letter, 0 elsewhere.
inline __m128i upper_bytes16(__m128i x) {
  return _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('A' - 1)),
                       _mm_cmplt_epi8(x, _mm_set1_epi8('Z' + 1)));
}
#endif

// True iff `s` holds an ASCII upper-case letter.
inline bool has_upper(std::string_view s) {
  const char* p = s.data();
  const std::size_t n = s.size();
  std::size_t i = 0;
#if defined(__SSE2__)
  if (n >= 16) {
    auto upper16 = [p](std::size_t at) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at));
      return _mm_movemask_epi8(upper_bytes16(x));
    };
    int any = 0;
    for (; i + 16 <= n; i += 16) any |= upper16(i);
    if (i < n) any |= upper16(n - 16);  // the tail as the 16 bytes ending at s[n - 1]
    return any != 0;
  }
#endif
  for (; i < n; ++i)
    if (p[i] >= 'A' && p[i] <= 'Z') return true;
  return false;
}

// `out` = `in` with A-Z lower-cased (other bytes as they are). `in` must not view `out`.
inline void lower_into(std::string_view in, std::string& out) {
  const std::size_t n = in.size();
#if defined(__SSE2__)
  if (n >= 16) {    // loads from `in`, stores to `out`: no store-to-load round trip
    out.resize(n);  // grows only the first times: then no fill
    const char* s = in.data();
    char* d = out.data();
    auto lower16 = [s, d](std::size_t at) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + at),
                       _mm_or_si128(x, _mm_and_si128(upper_bytes16(x), _mm_set1_epi8(0x20))));
    };
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) lower16(i);
    if (i < n) lower16(n - 16);  // the tail as the 16 bytes ending at in[n - 1]
    return;
  }
#endif
  out.assign(in);  // a copy, then in place: no zero fill of `out` first
  char* d = out.data();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t x;
    std::memcpy(&x, d + i, 8);
    x = lower8(x);
    std::memcpy(d + i, &x, 8);
  }
  if (i < n && n >= 8) {  // the tail as the 8 bytes ending at d[n - 1]: lowering twice is harmless
    std::uint64_t x;
    std::memcpy(&x, d + n - 8, 8);
    x = lower8(x);
    std::memcpy(d + n - 8, &x, 8);
    return;
  }
  for (; i < n; ++i) d[i] = lower(d[i]);
}

#if defined(__SSE2__)
// The first i in [0, n) with bit i of block_mask(s + 16k) set, n if none; n >= 16. The
// last, partial block is read as the 16 bytes ending at s[n - 1] (never past the end).
template <typename BlockMask>
std::size_t first_flagged16(const char* s, std::size_t n, BlockMask block_mask) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if (const unsigned bits = block_mask(s + i); bits != 0)
      return i + static_cast<std::size_t>(__builtin_ctz(bits));
  }
  if (i == n) return n;
  const unsigned skip = static_cast<unsigned>(16 - (n - i));  // bytes already looked at
  const unsigned bits = block_mask(s + n - 16) & (0xffffu << skip);
  return bits == 0 ? n : n - 16 + static_cast<std::size_t>(__builtin_ctz(bits));
}
#endif

// Index of the first byte of s[0..n) that a Squid token decoder must look at: '%', a
// control byte (< 0x20, 0x7f) or non-ASCII (n if none).
inline std::size_t find_token_special(const char* s, std::size_t n) {
#if defined(__SSE2__)
  if (n >= 16) {
    return first_flagged16(s, n, [](const char* p) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      // Signed compare: bytes >= 0x80 are negative, so "< 0x20" also catches them.
      const __m128i m = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                                     _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)),
                                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('%'))));
      return static_cast<unsigned>(_mm_movemask_epi8(m));
    });
  }
#endif
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '%') return i;
  }
  return n;
}

// True iff s[0..n) holds "//" (an empty path segment). Never reads outside s[0..n).
inline bool has_double_slash(const char* s, std::size_t n) {
  std::size_t i = 0;
#if defined(__SSE2__)
  if (n >= 17) {
    const __m128i slash = _mm_set1_epi8('/');
    // Bit k: s[at + k] and s[at + k + 1] are both '/'.
    auto pairs16 = [s, slash](std::size_t at) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at + 1));
      return _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, slash), _mm_cmpeq_epi8(b, slash)));
    };
    for (; i + 17 <= n; i += 16)
      if (pairs16(i) != 0) return true;
    return i + 1 < n && pairs16(n - 17) != 0;  // the pairs left, within the last 17 bytes
  }
#endif
  for (; i + 1 < n; ++i)
    if (s[i] == '/' && s[i + 1] == '/') return true;
  return false;
}

// Index of the first byte of s[0..n) that a URL path cannot take as is: a control byte,
// space, 0x7f or non-ASCII, or one of % ; # \ ? . (n if none). Bytes [lo, s) must be
// readable too (lo <= s): a short tail is then read as the 16 bytes ending at s[n - 1].
inline std::size_t find_path_special(const char* s, std::size_t n, const char* lo) {
#if defined(__SSE2__)
  auto mask = [](const char* p) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    auto eq = [&](char c) { return _mm_cmpeq_epi8(x, _mm_set1_epi8(c)); };
    // Signed compare: bytes >= 0x80 are negative, so "< 0x21" also catches them.
    __m128i m = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x21)), eq(0x7f));
    m = _mm_or_si128(m, _mm_or_si128(eq('%'), eq(';')));
    m = _mm_or_si128(m, _mm_or_si128(eq('#'), eq('\\')));
    m = _mm_or_si128(m, _mm_or_si128(eq('?'), eq('.')));
    return static_cast<unsigned>(_mm_movemask_epi8(m));
  };
  if (n >= 16) return first_flagged16(s, n, mask);
  if (n > 0 && static_cast<std::size_t>(s + n - lo) >= 16) {
    const unsigned bits = mask(s + n - 16) >> (16 - n);
    return bits == 0 ? n : static_cast<std::size_t>(__builtin_ctz(bits));
  }
#else
  (void)lo;
#endif
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c <= 0x20 || c >= 0x7f || c == '%' || c == ';' || c == '#' || c == '\\' || c == '?' ||
        c == '.')
      return i;
  }
  return n;
}

// scan_host_name's answer: `end` is the length of the leading run of [a-z0-9_.-] and bit
// i of `dots` is set iff s[i] == '.' (i < end). `known` is false when the run is 64 bytes
// or longer, or when s is shorter than 16 bytes: then the caller scans itself.
struct HostScan {
  std::size_t end = 0;
  std::uint64_t dots = 0;
  bool known = false;
};

// One pass over a host name at the start of s[0..n), 16 bytes per step, no branch per
// byte. Never reads outside s[0..n).
inline HostScan scan_host_name(const char* s, std::size_t n) {
  HostScan r;
#if defined(__SSE2__)
  if (n < 16) return r;
  const __m128i a1 = _mm_set1_epi8('a' - 1), z1 = _mm_set1_epi8('z' + 1);
  const __m128i d1 = _mm_set1_epi8('0' - 1), n1 = _mm_set1_epi8('9' + 1);
  const __m128i dash = _mm_set1_epi8('-'), under = _mm_set1_epi8('_'), dot = _mm_set1_epi8('.');
  std::size_t j = 0;  // bytes looked at
  for (int step = 0; step < 4; ++step) {
    const std::size_t at = j + 16 <= n ? j : n - 16;  // the last block ends at s[n - 1]
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
    const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(x, a1), _mm_cmplt_epi8(x, z1));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, d1), _mm_cmplt_epi8(x, n1));
    const __m128i punct = _mm_or_si128(_mm_cmpeq_epi8(x, dash), _mm_cmpeq_epi8(x, under));
    const __m128i isdot = _mm_cmpeq_epi8(x, dot);
    const __m128i ok = _mm_or_si128(_mm_or_si128(letter, digit), _mm_or_si128(punct, isdot));
    const unsigned seen = 0xffffu << (j - at);  // bits of bytes not looked at before
    const unsigned other = ~static_cast<unsigned>(_mm_movemask_epi8(ok)) & seen & 0xffffu;
    unsigned d = static_cast<unsigned>(_mm_movemask_epi8(isdot)) & seen;
    if (other != 0) {
      const auto stop = static_cast<unsigned>(__builtin_ctz(other));
      d &= (1u << stop) - 1;
      r.end = at + stop;
    } else {
      r.end = at + 16;
    }
    r.dots |= static_cast<std::uint64_t>(d) << at;
    if (other != 0 || r.end == n) {
      r.known = r.end < 64;
      return r;
    }
    j = at + 16;
  }
  return r;  // 64 bytes or more of name
#else
  (void)s;
  (void)n;
  return r;
#endif
}

inline std::string to_lower(std::string_view in) {
  std::string out;
  lower_into(in, out);
  return out;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

inline bool starts_with_icase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Parses a decimal number without sign, leading '+' or leading zeros (except "0").
// Returns false when not such a number or above `max`.
inline bool parse_decimal(std::string_view s, unsigned long max, unsigned long& out) {
  if (s.empty() || s.size() > 10) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  unsigned long v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

}  // namespace authbypass::text
