// libFuzzer target: structure-aware mutations of the shipped policy. The input is a list
// of edits applied to config/policy.yaml's lines (replace a value after "key:", delete,
// duplicate, move, indent or insert a line), so most mutants are nearly valid policies and
// reach deep into the loader and the compiled matchers. Never crashes or hangs; a loaded
// mutant answers requests, and its own tests run.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/policy.h"
#include "authbypass/policy_check.h"

using namespace authbypass;

namespace {

std::vector<std::string> shipped_lines() {
  std::ifstream in(AUTHBYPASS_SOURCE_DIR "/config/policy.yaml");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<std::string> base = shipped_lines();
  if (base.empty()) __builtin_trap();  // the shipped policy must be readable
  std::vector<std::string> lines = base;
  std::size_t i = 0;
  auto byte = [&]() -> std::uint8_t { return i < size ? data[i++] : 0; };
  for (int edits = 0; i < size && edits < 16 && !lines.empty(); ++edits) {
    const std::uint8_t op = byte() % 6;
    const std::size_t at = ((std::size_t{byte()} << 8) | byte()) % lines.size();
    const std::size_t len = byte() % 48;
    std::string payload(reinterpret_cast<const char*>(data + i), std::min(len, size - i));
    i += payload.size();
    std::string& l = lines[at];
    switch (op) {
      case 0: {  // replace the value after the first ':' (or the list item after "- ")
        std::size_t c = l.find(": ");
        std::size_t d = l.find("- ");
        std::size_t cut = c != std::string::npos   ? c + 2
                          : d != std::string::npos ? d + 2
                                                   : l.size();
        l = l.substr(0, cut) + payload;
        break;
      }
      case 1:
        lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      case 2:
        lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(at), l);
        break;
      case 3:
        std::swap(l, lines[(at + len + 1) % lines.size()]);
        break;
      case 4:
        l = std::string(len % 8, ' ') + l;
        break;
      case 5:
        lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(at), payload);
        break;
    }
  }
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  LoadResult r = load_policy_text(text, "mutant.yaml");
  if (!r.ok()) {
    if (r.errors.empty()) __builtin_trap();
    return 0;
  }
  const Date today = today_utc();
  (void)lint_policy(*r.policy, today);
  (void)run_policy_tests(*r.policy, today);
  Request req;
  for (const char* url : {"http://crl.microsoft.com/pki/crl/x.crl", "http://evil.test/x.exe?.crl",
                          "login.microsoftonline.com:443"}) {
    if (req.parse({url[0] == 'l' ? "CONNECT" : "GET", url, "Microsoft-CryptoAPI/10.0 MSOIDCRL",
                   "10.1.2.3"}))
      (void)r.policy->decide(req, today);
  }
  return 0;
}
