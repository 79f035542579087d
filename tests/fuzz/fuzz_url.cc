// libFuzzer target: URL parsing and normalization. Never crashes; a parsed request's
// match_path never holds '?', '#', ';', '\', '%', "//", control bytes or non-ASCII bytes,
// and a URL with a fragment or ;params never has a matchable path; an unmatchable path
// says why; and parse()'s shortcut for common URLs gives exactly the general parser's
// result (parse_reference()).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "authbypass/request.h"

using namespace authbypass;

namespace {

bool same(const Request& a, const Request& b) {
  if (a.ok() != b.ok() || a.error() != b.error()) return false;
  if (!a.ok()) return true;
  return a.method == b.method && a.method_bit == b.method_bit && a.is_connect == b.is_connect &&
         a.scheme == b.scheme && a.host == b.host && a.host_kind == b.host_kind &&
         a.host_ip.v6 == b.host_ip.v6 && a.host_ip.bytes == b.host_ip.bytes && a.port == b.port &&
         a.path == b.path && a.params == b.params && a.query == b.query &&
         a.match_path == b.match_path && a.match_path_ok == b.match_path_ok &&
         (a.match_path_why == nullptr) == (b.match_path_why == nullptr) && a.url == b.url &&
         a.user_agent == b.user_agent && a.user_agent_lower == b.user_agent_lower;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Request req;
  Request ref;
  for (std::string_view method : {"GET", "CONNECT"}) {
    const bool ok = req.parse({method, in, "ua", "10.0.0.1"});
    ref.parse_reference({method, in, "ua", "10.0.0.1"});
    if (!same(req, ref)) __builtin_trap();
    if (ok && req.match_path_ok) {
      for (char c : req.match_path) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '?' || c == '#' || c == ';' || c == '\\' || c == '%' || u < 0x20 || u >= 0x7f)
          __builtin_trap();
      }
      if (req.match_path.find("//") != std::string_view::npos || req.match_path_why != nullptr ||
          !req.params.empty() || in.find('#') != std::string_view::npos)
        __builtin_trap();
    }
    if (ok && !req.is_connect && !req.match_path_ok && req.match_path_why == nullptr)
      __builtin_trap();
  }
  return 0;
}
