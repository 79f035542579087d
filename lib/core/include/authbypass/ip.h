// IP addresses and CIDR blocks, IPv4 and IPv6, as the policy and the request model use them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace authbypass {

// An IPv4 or IPv6 address. IPv4 is stored in the first 4 bytes; the rest are zero.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};  // first: 16-byte copies stay aligned with it
  bool v6 = false;

  // Strict parse: IPv4 only as four decimal octets without leading zeros ("192.0.2.7");
  // IPv6 in any RFC 4291 text form without brackets or zone id. Anything else: nullopt.
  static std::optional<IpAddress> parse(std::string_view text);
  // The same parse into `out` (left unspecified when it returns false).
  static bool parse_into(std::string_view text, IpAddress& out);

  // Canonical text (RFC 5952 for IPv6).
  std::string to_string() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// An address block: base/prefix. The base has no bits set beyond the prefix.
struct Cidr {
  IpAddress base;
  std::uint8_t prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6

  // Parses "ADDR" (a host route, /32 or /128) or "ADDR/N". Bits set past the prefix
  // ("10.1.2.3/8") are an error, so a typo never widens the block silently. On error
  // returns nullopt and sets *error (if given) to a message for people.
  static std::optional<Cidr> parse(std::string_view text, std::string* error = nullptr);

  // True iff `addr` is of the same family and inside the block.
  bool contains(const IpAddress& addr) const;

  std::string to_string() const;
};

}  // namespace authbypass
