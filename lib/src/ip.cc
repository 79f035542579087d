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
#if defined(__SSE2__)
  {
    const std::size_t word = n >= 8 ? 8 : 4;
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    if (word == 8) {  // fixed-size copies: plain loads
      std::memcpy(&lo, p, 8);
      std::memcpy(&hi, p + n - 8, 8);
    } else {
      std::uint32_t a;
      std::uint32_t b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      lo = a;
      hi = b;
    }
    const __m128i x = _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
    const auto d = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('.'))));
    const auto g = static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(
        _mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)))));
    const unsigned keep = (1u << word) - 1;  // the bytes each word really holds
    dots = (d & keep) | (((d >> 8) & keep) << (n - word));
    digits = (g & keep) | (((g >> 8) & keep) << (n - word));
  }
#else
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
  if ((dots | digits) != all || (dots & digits) != 0 || rest2 == 0 ||
      (rest2 & (rest2 - 1)) != 0 || (dots & 1u) != 0 || (dots >> (n - 1)) != 0 ||
      (dots & (dots >> 1)) != 0)
    return false;
  const auto d1 = static_cast<unsigned>(__builtin_ctz(dots));
  const auto d2 = static_cast<unsigned>(__builtin_ctz(rest));
  const auto d3 = static_cast<unsigned>(__builtin_ctz(rest2));
  const unsigned starts[4] = {0, d1 + 1, d2 + 1, d3 + 1};
  const unsigned ends[4] = {d1, d2, d3, static_cast<unsigned>(n)};
  const auto last = static_cast<unsigned>(n - 1);
  bool ok = true;
  unsigned octet[4];
  for (int k = 0; k < 4; ++k) {
    const unsigned st = starts[k];
    const unsigned len = ends[k] - st;
    // Up to three digits from the text itself (indexes kept inside it: a digit past the
    // octet gets place value 0 below).
    const unsigned a = static_cast<unsigned char>(p[st]) - '0';
    const unsigned b = static_cast<unsigned char>(p[std::min(st + 1, last)]) - '0';
    const unsigned c = static_cast<unsigned char>(p[std::min(st + 2, last)]) - '0';
    // Place values by length (1-3; longer octets are refused below): a table, no branch.
    static constexpr unsigned kPlace[16][3] = {{0, 0, 0}, {1, 0, 0}, {10, 1, 0}, {100, 10, 1}};
    const unsigned v = a * kPlace[len][0] + b * kPlace[len][1] + c * kPlace[len][2];
    ok &= (len <= 3) & (v <= 255) & ((len == 1) | (a != 0));  // "0" alone, or no leading zero
    octet[k] = v;
  }
  if (!ok) return false;
  out.v6 = false;
#if defined(__SSE2__)
  // All 16 bytes in one store: a later copy of `out` reads them back at full speed (byte
  // stores followed by a 16-byte load stall the load).
  const unsigned packed = octet[0] | octet[1] << 8 | octet[2] << 16 | octet[3] << 24;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out.bytes.data()),
                   _mm_cvtsi32_si128(static_cast<int>(packed)));
#else
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
