#include "host_matcher.h"

#include <algorithm>
#include <cstring>

#include "text.h"

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
      suffix_labels_ |= label_bit(p.name);
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

std::uint64_t HostIndex::hash_name(std::string_view s) {
  constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = s.size() * k;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  // The last 0..7 bytes without a variable-length copy: two overlapping 4-byte loads, or
  // first / middle / last byte (the length is in h already).
  const char* p = s.data() + i;
  const std::size_t r = s.size() - i;
  std::uint64_t tail = 0;
  if (r >= 4) {
    std::uint32_t a;
    std::uint32_t b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + r - 4, 4);
    tail = a | (std::uint64_t{b} << 32);
  } else if (r > 0) {
    tail = static_cast<unsigned char>(p[0]) | (static_cast<unsigned char>(p[r / 2]) << 8) |
           (static_cast<unsigned char>(p[r - 1]) << 16);
  }
  h = (h ^ tail) * k;
  return h ^ (h >> 32);
}

const HostIndex::NameEntry* HostIndex::find_name(std::string_view name) const {
  if (slots_.empty()) return nullptr;
  const std::uint64_t h = hash_name(name);
  const auto tag = static_cast<std::uint32_t>(h >> 32);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.entry == 0) return nullptr;
    if (s.tag == tag && text::equal(keys_[s.entry - 1], name)) return entries_[s.entry - 1];
  }
}

std::string_view HostIndex::last_two_labels(std::string_view name) {
  const std::size_t last = name.rfind('.');
  if (last == std::string_view::npos || last == 0) return name;
  const std::size_t before = name.rfind('.', last - 1);
  return before == std::string_view::npos ? name : name.substr(before + 1);
}

std::uint64_t HostIndex::tail_hash(std::string_view s) {
  // The first and last 8 bytes (4 for shorter text, the bytes themselves under 4) and the
  // length: a filter, so a collision only costs the full lookup.
  const std::size_t n = s.size();
  const char* p = s.data();
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (n >= 8) {  // tested first, as most names are this long (the call's test folds away)
    text::load_end_words(p, n, a, b);
  } else if (n >= 4) {
    text::load_end_words(p, n, a, b);
  } else if (n > 0) {
    a = static_cast<unsigned char>(p[0]) | (static_cast<unsigned char>(p[n / 2]) << 8) |
        (static_cast<unsigned char>(p[n - 1]) << 16);
  }
  constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = ((a ^ (n << 56)) * k) ^ b;
  h *= 0xC2B2AE3D27D4EB4Full;
  return (h ^ (h >> 29)) | 1;  // 0 marks an empty slot
}

bool HostIndex::tail_may_match(const Request& req) const {
  std::string_view tail = req.host;
  if (req.host_dots_known) {  // from the parser's dot mask: no scan
    std::uint64_t d = req.host_dots;
    if (d != 0) d &= ~(std::uint64_t{1} << (63 - __builtin_clzll(d)));  // all but the last dot
    if (d != 0) tail.remove_prefix(static_cast<std::size_t>(64 - __builtin_clzll(d)));
  } else {
    tail = last_two_labels(tail);
  }
  const std::uint64_t h = tail_hash(tail);
  const std::size_t mask = tails_.size() - 1;
  for (std::size_t i = (h >> 1) & mask;; i = (i + 1) & mask) {  // bit 0 is always 1
    if (tails_[i] == h) return true;
    if (tails_[i] == 0) return false;
  }
}

void HostIndex::finish() {
  for (auto& [name, entry] : names_) {
    sort_unique(entry.exact);
    sort_unique(entry.suffix);
  }
  // Load factor <= 1/4 for small tables (a miss then mostly ends at its first slot), <= 1/2
  // from 4,096 names on (the table stays within cache).
  const std::size_t spread = names_.size() < 4096 ? 4 : 2;
  std::size_t cap = 16;
  while (cap < names_.size() * spread) cap *= 2;
  slots_.assign(cap, Slot{});
  keys_.clear();
  entries_.clear();
  for (const auto& [name, entry] : names_) {
    keys_.push_back(name);
    entries_.push_back(&entry);
    const std::uint64_t h = hash_name(name);
    std::size_t i = h & (cap - 1);
    while (slots_[i].entry != 0) i = (i + 1) & (cap - 1);
    slots_[i] =
        Slot{static_cast<std::uint32_t>(entries_.size()), static_cast<std::uint32_t>(h >> 32)};
  }
  // The last-two-label filter; a one-label suffix entry (say ".org") turns it off.
  tail_filter_ = !names_.empty() && (suffix_labels_ & 2) == 0;
  tails_.clear();
  if (tail_filter_) {
    // Sized by the distinct tails (many names share a domain), so the table stays small.
    std::vector<std::uint64_t> hashes;
    hashes.reserve(names_.size());
    for (const auto& [name, entry] : names_) hashes.push_back(tail_hash(last_two_labels(name)));
    std::sort(hashes.begin(), hashes.end());
    hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
    std::size_t tail_cap = 16;
    while (tail_cap < hashes.size() * 4) tail_cap *= 2;
    tails_.assign(tail_cap, 0);
    for (const std::uint64_t h : hashes) {
      std::size_t i = (h >> 1) & (tail_cap - 1);  // bit 0 is always 1
      while (tails_[i] != 0) i = (i + 1) & (tail_cap - 1);
      tails_[i] = h;
    }
  }
  for (auto& level : cidr_levels_) {
    for (auto& [key, rules] : level.blocks) sort_unique(rules);
  }
  max_suffix_labels_ = 0;
  for (std::size_t b = 0; b < 64; ++b)
    if ((suffix_labels_ >> b) & 1) max_suffix_labels_ = b;
  if (max_suffix_labels_ == 63) max_suffix_labels_ = SIZE_MAX;  // bit 63: 63 labels or more
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
    const std::string_view h = req.host;
    if (tail_filter_ && !tail_may_match(req)) return 0;  // most hosts: one probe, no match
    if (const NameEntry* e = find_name(h)) {
      append(e->exact);
      append(e->suffix);
    }
    // Parent domains, at label boundaries only, from the right: "c", "b.c" for "a.b.c".
    // Only parents with a label count some suffix entry has can match: skip the others,
    // and stop past the longest suffix entry.
    std::size_t labels = 1;  // labels of h.substr(i + 1) when h[i] is a dot
    auto parent = [&](std::size_t i) {
      if ((suffix_labels_ & (std::uint64_t{1} << (labels < 63 ? labels : 63))) != 0) {
        if (const NameEntry* e = find_name(h.substr(i + 1))) append(e->suffix);
      }
      ++labels;
    };
    if (req.host_dots_known) {  // the parser's dot mask: one step per dot
      for (std::uint64_t d = req.host_dots; d != 0 && labels <= max_suffix_labels_ && !overflow;) {
        const auto i = static_cast<std::size_t>(63 - __builtin_clzll(d));
        d &= ~(std::uint64_t{1} << i);
        parent(i);
      }
    } else {
      for (std::size_t i = h.size(); i-- > 0 && labels <= max_suffix_labels_ && !overflow;) {
        if (h[i] == '.') parent(i);
      }
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
  if (n <= 1) return n;
  std::sort(out, out + n);
  return static_cast<std::size_t>(std::unique(out, out + n) - out);
}

}  // namespace authbypass
