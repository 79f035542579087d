// libFuzzer target: the YAML policy loader on arbitrary bytes. Never crashes or hangs; a
// loaded policy answers a request.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "authbypass/policy.h"

using namespace authbypass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  LoadResult r = load_policy_text(text, "fuzz.yaml");
  if (r.ok()) {
    Request req;
    if (req.parse({"GET", "http://crl.example.com/x.crl", "Microsoft-CryptoAPI/10.0", "10.0.0.1"}))
      (void)r.policy->decide(req, today_utc());
  } else if (r.errors.empty()) {
    __builtin_trap();  // a failed load always says why
  }
  return 0;
}
