// Host-name rules shared by the request parser and the policy loader, so that a policy
// host and a request host are read the same way.
#pragma once

#include <string_view>

#include "text.h"

namespace authbypass {

// True iff `host` ends in a number, the WHATWG URL Standard's "ends in a number checker":
// its last label (one trailing dot ignored) is non-empty and all ASCII digits, or is "0x"
// or "0X" followed by hex digits only (none at all included: "0x"). Browsers and some
// resolvers read such a name as an IPv4 address (3221225991, 0xc0.0.2.7, 0300.0.2.7,
// 192.0.2), so neither side may take it for a DNS name. "1e5" and "0xg1" are names.
inline bool ends_in_number(std::string_view host) {
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
    if (host.empty()) return false;  // "." alone: a single empty label
  }
  const std::size_t dot = host.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) return false;
  if (last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
    for (char c : last.substr(2))
      if (text::hex_value(c) < 0) return false;
    return true;
  }
  for (char c : last)
    if (!text::is_digit(c)) return false;
  return true;
}

}  // namespace authbypass
