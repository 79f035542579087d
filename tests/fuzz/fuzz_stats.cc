// libFuzzer target: stats snapshots (stats.h). parse_stats never crashes or grows past its
// bounds, and whatever it accepts survives format_stats unchanged: parse(format(s)) == s,
// and format is a fixed point (format(parse(format(s))) == format(s)).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "authbypass/stats.h"

using namespace authbypass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto s = parse_stats(in);
  if (!s) return 0;
  const std::string once = format_stats(*s);
  auto again = parse_stats(once);
  if (!again) std::abort();  // a snapshot it accepted must read back
  if (again->source != s->source || again->pid != s->pid || again->helper != s->helper ||
      again->icap != s->icap || again->policy_sha256 != s->policy_sha256 ||
      again->policy_file != s->policy_file || again->rules.size() != s->rules.size())
    std::abort();
  if (format_stats(*again) != once) std::abort();
  return 0;
}
