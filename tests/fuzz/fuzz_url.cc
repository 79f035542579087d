// libFuzzer target: URL parsing and normalization. Never crashes; a parsed request's
// match_path never holds '?', '#', ';', '\' or control bytes; and parse()'s shortcut for
// common URLs gives exactly the general parser's result (parse_reference()).
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
         a.match_path == b.match_path && a.match_path_ok == b.match_path_ok && a.url == b.url &&
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
        if (c == '?' || c == '#' || c == ';' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
          __builtin_trap();
      }
    }
  }
  return 0;
}
