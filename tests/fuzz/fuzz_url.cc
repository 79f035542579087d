// libFuzzer target: URL parsing and normalization. Never crashes; a parsed request's
// match_path never holds '?', '#', ';', '\' or control bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "authbypass/request.h"

using namespace authbypass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Request req;
  for (std::string_view method : {"GET", "CONNECT"}) {
    if (req.parse({method, in, "ua", "10.0.0.1"}) && req.match_path_ok) {
      for (char c : req.match_path) {
        if (c == '?' || c == '#' || c == ';' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
          __builtin_trap();
      }
    }
  }
  return 0;
}
