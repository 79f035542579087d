#include "cidr_set.h"

#include <algorithm>
#include <cstdint>

namespace authbypass {

namespace {

// 128-bit arithmetic for IPv6 ranges (GCC and clang both have it).
__extension__ typedef unsigned __int128 U128;

constexpr U128 kAllOnes = ~U128{0};

struct Range {
  U128 first;
  U128 last;  // inclusive
};

U128 to_number(const IpAddress& a) {
  U128 v = 0;
  const int n = a.v6 ? 16 : 4;
  for (int i = 0; i < n; ++i) v = (v << 8) | a.bytes[static_cast<std::size_t>(i)];
  return v;
}

IpAddress from_number(U128 v, bool v6) {
  IpAddress a;
  a.v6 = v6;
  const int n = v6 ? 16 : 4;
  for (int i = n - 1; i >= 0; --i) {
    a.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v & 0xFF);
    v >>= 8;
  }
  return a;
}

// Ranges of one family, sorted and merged (overlapping or touching), back to blocks.
void aggregate_family(std::vector<Range>& ranges, bool v6, std::vector<Cidr>& out) {
  if (ranges.empty()) return;
  const unsigned bits = v6 ? 128 : 32;
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  std::vector<Range> merged;
  for (const Range& r : ranges) {
    if (!merged.empty()) {
      Range& cur = merged.back();
      // Touching (cur.last + 1 == r.first) or overlapping; cur.last == max covers the rest.
      if (cur.last == kAllOnes || r.first <= cur.last + 1) {
        cur.last = std::max(cur.last, r.last);
        continue;
      }
    }
    merged.push_back(r);
  }
  for (const Range& r : merged) {
    U128 start = r.first;
    for (;;) {
      // The largest aligned block that starts at `start` and ends at or before r.last.
      unsigned size_bits = 0;  // block of 2^size_bits addresses
      while (size_bits < bits) {
        const unsigned next = size_bits + 1;
        const U128 mask = next >= 128 ? kAllOnes : (U128{1} << next) - 1;
        if ((start & mask) != 0) break;                // not aligned
        if (mask > r.last - start) break;              // would run past the end
        size_bits = next;
      }
      Cidr c;
      c.base = from_number(start, v6);
      c.prefix = static_cast<std::uint8_t>(bits - size_bits);
      out.push_back(c);
      const U128 span = size_bits >= 128 ? kAllOnes : (U128{1} << size_bits) - 1;  // size - 1
      if (r.last - start <= span) break;  // this block reaches the end (no overflow)
      start += span + 1;
    }
  }
}

}  // namespace

std::vector<Cidr> aggregate_cidrs(const std::vector<Cidr>& blocks) {
  std::vector<Range> v4, v6;
  for (const Cidr& c : blocks) {
    const unsigned bits = c.base.v6 ? 128 : 32;
    const unsigned host_bits = bits - std::min<unsigned>(c.prefix, bits);
    const U128 span = host_bits >= 128 ? kAllOnes : (U128{1} << host_bits) - 1;
    const U128 first = to_number(c.base) & ~span;  // robust to host bits past the prefix
    (c.base.v6 ? v6 : v4).push_back(Range{first, first + span});
  }
  std::vector<Cidr> out;
  out.reserve(blocks.size());
  aggregate_family(v4, false, out);
  aggregate_family(v6, true, out);
  return out;
}

}  // namespace authbypass
