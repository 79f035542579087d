#include "authbypass/ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "text.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace authbypass {

namespace {

// A strict dotted quad: four decimal octets 0-255, no leading zeros, no sign. The text
// (7-15 bytes) is checked as a whole from its dot and digit masks, then each octet is
// computed without a branch per digit.
bool parse_ipv4(std::string_view s, IpAddress& out) {
  const std::size_t n = s.size();
  if (n < 7 || n > 15) return false;
  const char* const p = s.data();
  // Dot and digit masks of the whole text (bit i: p[i]); with SSE2 from two overlapping
  // loads of the text itself (8-byte words for 8-15 bytes, 4-byte ones for 7).
  unsigned dots = 0;
  unsigned digits = 0;
  // The text with three '0' bytes in front, for the octets below.
  unsigned char t[24] = {'0', '0', '0'};
#if defined(__SSE2__)
  {
    const std::size_t word = n >= 8 ? 8 : 4;
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    text::load_end_words(p, n, lo, hi);
    // Little-endian: a 4-byte word sits in the low half, zeros above (bytes past the
    // text are never read as digits).
    std::memcpy(t + 3, &lo, 8);
    std::memcpy(t + 3 + n - word, &hi, 8);
    const __m128i x = _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
    const auto d = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('.'))));
    const auto g = static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(
        _mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)))));
    const unsigned keep = (1u << word) - 1;  // the bytes each word really holds
    dots = (d & keep) | (((d >> 8) & keep) << (n - word));
    digits = (g & keep) | (((g >> 8) & keep) << (n - word));
  }
#else
  std::memcpy(t + 3, p, n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    dots |= static_cast<unsigned>(c == '.') << i;
    digits |= static_cast<unsigned>(static_cast<unsigned>(c - '0') < 10u) << i;
  }
#endif
  const unsigned all = (1u << n) - 1;
  // Every byte a digit or a dot, exactly three dots, none first, last or doubled.
  const unsigned rest = dots & (dots - 1);   // without the first dot
  const unsigned rest2 = rest & (rest - 1);  // without the first two
  if ((dots | digits) != all || (dots & digits) != 0 || rest2 == 0 || (rest2 & (rest2 - 1)) != 0 ||
      (dots & 1u) != 0 || (dots >> (n - 1)) != 0 || (dots & (dots >> 1)) != 0)
    return false;
  const auto d1 = static_cast<unsigned>(__builtin_ctz(dots));
  const auto d2 = static_cast<unsigned>(__builtin_ctz(rest));
  const auto d3 = static_cast<unsigned>(__builtin_ctz(rest2));
  // Each octet from the three bytes that end it: a 32-bit word of `t`, masked to the
  // octet's own digits (byte 0: the third digit from the end). Two octets per 64-bit
  // word: no branch and no per-digit index.
  const unsigned lens[4] = {d1, d2 - d1 - 1, d3 - d2 - 1, static_cast<unsigned>(n) - d3 - 1};
  static constexpr std::uint64_t kDigitMask[16] = {0, 0x00FF0000u, 0x00FFFF00u, 0x00FFFFFFu};
  // The least value of an octet of each length without a leading zero ("0" alone is
  // fine); 1000 (never reached) for lengths that are refused.
  static constexpr unsigned kLeast[16] = {1000, 0,    10,   100,  1000, 1000, 1000, 1000,
                                          1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000};
  auto pair = [&](unsigned e0, unsigned l0, unsigned e1, unsigned l1) {
    std::uint32_t a;
    std::uint32_t b;
    std::memcpy(&a, t + e0, 4);  // t[e..] = text[e - 3..]
    std::memcpy(&b, t + e1, 4);
    const std::uint64_t w = ((a | std::uint64_t{b} << 32) ^ 0x3030303030303030ull) &
                            (kDigitMask[l0 & 15] | kDigitMask[l1 & 15] << 32);
    constexpr std::uint64_t lane = 0x000000FF000000FFull;
    return (w & lane) * 100 + ((w >> 8) & lane) * 10 + ((w >> 16) & lane);
  };
  const std::uint64_t v01 = pair(d1, lens[0], d2, lens[1]);
  const std::uint64_t v23 = pair(d3, lens[2], static_cast<unsigned>(n), lens[3]);
  const auto o0 = static_cast<unsigned>(v01 & 0xFFFFFFFFu);
  const auto o1 = static_cast<unsigned>(v01 >> 32);
  const auto o2 = static_cast<unsigned>(v23 & 0xFFFFFFFFu);
  const auto o3 = static_cast<unsigned>(v23 >> 32);
  const bool ok = ((o0 | o1 | o2 | o3) <= 255) & (o0 >= kLeast[lens[0] & 15]) &
                  (o1 >= kLeast[lens[1] & 15]) & (o2 >= kLeast[lens[2] & 15]) &
                  (o3 >= kLeast[lens[3] & 15]);
  if (!ok) return false;
  out.v6 = false;
#if defined(__SSE2__)
  // All 16 bytes in one store: a later copy of `out` reads them back at full speed (byte
  // stores followed by a 16-byte load stall the load).
  const unsigned packed = o0 | o1 << 8 | o2 << 16 | o3 << 24;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out.bytes.data()),
                   _mm_cvtsi32_si128(static_cast<int>(packed)));
#else
  const unsigned octet[4] = {o0, o1, o2, o3};
  for (std::size_t k = 0; k < 4; ++k) out.bytes[k] = static_cast<std::uint8_t>(octet[k]);
  std::fill(out.bytes.begin() + 4, out.bytes.end(), std::uint8_t{0});
#endif
  return true;
}

bool parse_ipv6(std::string_view s, IpAddress& out) {
  // inet_pton wants a NUL-terminated string; the longest IPv6 text is 45 characters.
  char buf[64];
  if (s.empty() || s.size() >= sizeof buf) return false;
  for (char c : s) {
    if (!(text::hex_value(c) >= 0 || c == ':' || c == '.')) return false;
  }
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  out = IpAddress{};
  out.v6 = true;
  return inet_pton(AF_INET6, buf, out.bytes.data()) == 1;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  IpAddress a;
  if (parse_into(text, a)) return a;
  return std::nullopt;
}

bool IpAddress::parse_into(std::string_view text, IpAddress& out) {
  if (parse_ipv4(text, out)) return true;  // fails at once on the first ':' or hex letter
  return text.find(':') != std::string_view::npos && parse_ipv6(text, out);
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Cidr> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  std::size_t slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return fail("'" + std::string(text.substr(0, slash)) + "' is not an IP address");
  const unsigned long max_prefix = addr->v6 ? 128 : 32;
  unsigned long prefix = max_prefix;
  if (slash != std::string_view::npos) {
    if (!text::parse_decimal(text.substr(slash + 1), max_prefix, prefix))
      return fail("bad prefix length in '" + std::string(text) + "' (expected /0../" +
                  std::to_string(max_prefix) + ")");
  }
  Cidr c;
  c.base = *addr;
  c.prefix = static_cast<std::uint8_t>(prefix);
  // Reject host bits beyond the prefix: "10.1.2.3/8" is probably a typo.
  for (unsigned bit = c.prefix; bit < max_prefix; ++bit) {
    if (c.base.bytes[bit / 8] & (0x80u >> (bit % 8)))
      return fail("'" + std::string(text) + "' has bits set past the /" + std::to_string(prefix) +
                  " prefix (did you mean " +
                  [&] {
                    Cidr fixed = c;
                    for (unsigned b = c.prefix; b < max_prefix; ++b)
                      fixed.base.bytes[b / 8] &= static_cast<std::uint8_t>(~(0x80u >> (b % 8)));
                    return fixed.to_string();
                  }() +
                  "?)");
  }
  return c;
}

bool Cidr::contains(const IpAddress& addr) const {
  if (addr.v6 != base.v6) return false;
  const unsigned full = prefix / 8;
  if (std::memcmp(addr.bytes.data(), base.bytes.data(), full) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFFu << (8 - rest));
  return (addr.bytes[full] & mask) == base.bytes[full];
}

std::string Cidr::to_string() const {
  return base.to_string() + "/" + std::to_string(prefix);
}

}  // namespace authbypass
