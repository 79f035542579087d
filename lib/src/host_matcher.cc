#include "host_matcher.h"

#include <algorithm>
#include <cstring>

namespace authbypass {

namespace {

void sort_unique(std::vector<std::uint32_t>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

HostIndex::Key HostIndex::masked_key(const IpAddress& a, std::uint8_t prefix) {
  std::array<std::uint8_t, 16> b = a.bytes;
  for (unsigned bit = prefix; bit < 128; ++bit) {
    b[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  Key k{};
  std::memcpy(k.data(), b.data(), 16);
  return k;
}

void HostIndex::add(const HostPattern& p, std::uint32_t rule_index) {
  switch (p.kind) {
    case HostPattern::Kind::kExact:
      names_[p.name].exact.push_back(rule_index);
      break;
    case HostPattern::Kind::kSuffix:
      names_[p.name].suffix.push_back(rule_index);
      break;
    case HostPattern::Kind::kCidr: {
      auto it = std::find_if(cidr_levels_.begin(), cidr_levels_.end(), [&](const CidrLevel& l) {
        return l.v6 == p.cidr.base.v6 && l.prefix == p.cidr.prefix;
      });
      if (it == cidr_levels_.end()) {
        cidr_levels_.push_back(CidrLevel{p.cidr.base.v6, p.cidr.prefix, {}});
        it = cidr_levels_.end() - 1;
      }
      it->blocks[masked_key(p.cidr.base, p.cidr.prefix)].push_back(rule_index);
      break;
    }
  }
}

void HostIndex::finish() {
  for (auto& [name, entry] : names_) {
    sort_unique(entry.exact);
    sort_unique(entry.suffix);
  }
  for (auto& level : cidr_levels_) {
    for (auto& [key, rules] : level.blocks) sort_unique(rules);
  }
}

std::size_t HostIndex::lookup(const Request& req, std::uint32_t* out, std::size_t cap) const {
  std::size_t n = 0;
  bool overflow = false;
  auto append = [&](const std::vector<std::uint32_t>& rules) {
    for (std::uint32_t r : rules) {
      if (n == cap) {
        overflow = true;
        return;
      }
      out[n++] = r;
    }
  };

  if (req.host_kind == HostKind::kName) {
    std::string_view h = req.host;
    if (auto it = names_.find(h); it != names_.end()) {
      append(it->second.exact);
      append(it->second.suffix);
    }
    // Parent domains, at label boundaries only: "a.b.c" -> "b.c" -> "c".
    for (std::size_t dot = h.find('.'); dot != std::string_view::npos && !overflow;
         dot = h.find('.')) {
      h.remove_prefix(dot + 1);
      if (auto it = names_.find(h); it != names_.end()) append(it->second.suffix);
    }
  } else {
    for (const CidrLevel& level : cidr_levels_) {
      if (level.v6 != req.host_ip.v6) continue;
      if (auto it = level.blocks.find(masked_key(req.host_ip, level.prefix));
          it != level.blocks.end()) {
        append(it->second);
      }
    }
  }
  if (overflow) return SIZE_MAX;
  std::sort(out, out + n);
  return static_cast<std::size_t>(std::unique(out, out + n) - out);
}

}  // namespace authbypass
