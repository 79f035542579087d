#include "authbypass/ip.h"

#include <arpa/inet.h>

#include <cstring>

#include "text.h"

namespace authbypass {

namespace {

// A strict dotted quad: four decimal octets 0-255, no leading zeros, no sign. One pass.
bool parse_ipv4(std::string_view s, IpAddress& out) {
  if (s.size() < 7 || s.size() > 15) return false;
  out = IpAddress{};
  const char* p = s.data();
  const char* const e = p + s.size();
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (p == e || *p != '.') return false;
      ++p;
    }
    if (p == e || !text::is_digit(*p)) return false;
    unsigned v = static_cast<unsigned>(*p++ - '0');
    if (v != 0) {  // no leading zeros: "0" alone, or 1-3 digits starting 1-9
      for (int k = 0; k < 2 && p != e && text::is_digit(*p); ++k)
        v = v * 10 + static_cast<unsigned>(*p++ - '0');
      if (v > 255) return false;
    }
    out.bytes[static_cast<std::size_t>(part)] = static_cast<std::uint8_t>(v);
  }
  return p == e;
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
  if (parse_ipv4(text, a)) return a;  // fails at once on the first ':' or hex letter
  if (text.find(':') != std::string_view::npos && parse_ipv6(text, a)) return a;
  return std::nullopt;
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
