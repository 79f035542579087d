// The engine's answer for one request.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace authbypass {

struct Rule;

enum class Verdict : std::uint8_t { kAuthenticate, kBypass };

// What the policy decided. Points into the Policy that made it: keep that policy alive
// (hold its shared_ptr) while using the Decision.
struct Decision {
  static constexpr std::size_t kMaxShadow = 16;

  Verdict verdict = Verdict::kAuthenticate;
  const Rule* rule = nullptr;  // the first matching active enforce rule (kBypass only)

  // Active shadow rules that matched, in file order (they never change the verdict).
  std::array<const Rule*, kMaxShadow> shadow{};
  std::uint8_t shadow_count = 0;
  bool shadow_truncated = false;  // more than kMaxShadow shadow rules matched

  bool regex_fault = false;  // a regex hit Boost's complexity limit (counted as no match)
  std::string_view reason;   // for kAuthenticate: why no bypass ("no rule matched", ...)

  bool bypass() const { return verdict == Verdict::kBypass; }
};

}  // namespace authbypass
