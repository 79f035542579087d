// libFuzzer target: the revocation-data checker, in one feed and split at a fuzzed point.
// Properties: never crashes; the verdict does not depend on how the body is chunked.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "authbypass/revocation_check.h"

using namespace authbypass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const Verify verifies[] = {Verify::kCrl, Verify::kOcsp, Verify::kCert, Verify::kCtl,
                             Verify::kRevocation};
  const Verify v = verifies[data[0] % 5];
  const bool with_length = data[1] & 1;
  std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t split = body.empty() ? 0 : (data[1] >> 1) % (body.size() + 1);
  auto run = [&](bool chunked, bool request) {
    auto c = request ? RevocationCheck::for_ocsp_request() : RevocationCheck::for_response(v);
    c.begin("", "", with_length ? static_cast<std::int64_t>(body.size()) : -1);
    if (chunked) {
      c.feed(body.substr(0, split));
      c.feed(body.substr(split));
    } else {
      c.feed(body);
    }
    (void)c.identified();
    return c.finish();
  };
  for (bool request : {false, true}) {
    if (run(false, request) != run(true, request)) __builtin_trap();
  }
  return 0;
}
