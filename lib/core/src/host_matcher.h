// The host matcher: which rules have a `hosts` entry matching a request's host, at a cost
// that depends on the host's label count, not on the number of entries.
//  - names: one hash lookup for the full host (exact and suffix entries), then one per
//    parent domain at label boundaries (suffix entries only);
//  - IP literals: one hash lookup per distinct prefix length present in the policy.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "authbypass/policy.h"
#include "authbypass/request.h"

namespace authbypass {

class HostIndex {
 public:
  // Records that rule `rule_index` has entry `p`.
  void add(const HostPattern& p, std::uint32_t rule_index);
  // Sorts and de-duplicates the rule lists; call once after the last add().
  void finish();

  // Writes the indices of rules whose hosts match `req` into out[0..), ascending and
  // unique, and returns how many. Returns SIZE_MAX when more than `cap` rules match
  // (the caller then falls back to per-rule checks).
  std::size_t lookup(const Request& req, std::uint32_t* out, std::size_t cap) const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct NameEntry {
    std::vector<std::uint32_t> exact;   // rules listing "name"
    std::vector<std::uint32_t> suffix;  // rules listing ".name"
  };
  using Key = std::array<std::uint64_t, 2>;
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return static_cast<std::size_t>(k[0] * 0x9E3779B97F4A7C15ull ^
                                      (k[1] + 0x632BE59BD9B4E019ull));
    }
  };
  struct CidrLevel {
    bool v6 = false;
    std::uint8_t prefix = 0;
    std::unordered_map<Key, std::vector<std::uint32_t>, KeyHash> blocks;
  };
  static Key masked_key(const IpAddress& a, std::uint8_t prefix);

  // Bit min(labels, 63) of a name: which label counts the suffix entries have.
  static std::uint64_t label_bit(std::string_view name) {
    std::size_t labels = 1;
    for (char c : name) labels += c == '.';
    return std::uint64_t{1} << (labels < 63 ? labels : 63);
  }

  // Word-at-a-time hash for short host names.
  static std::uint64_t hash_name(std::string_view s);
  // The name's entry in the flat table, or nullptr.
  const NameEntry* find_name(std::string_view name) const;

  std::unordered_map<std::string, NameEntry, StringHash, std::equal_to<>> names_;  // build
  // Lookup form, built by finish(): open addressing, power-of-two slots holding
  // entry index + 1 (0 = empty) and the hash's high bits to skip most key compares.
  struct Slot {
    std::uint32_t entry = 0;
    std::uint32_t tag = 0;
  };
  std::vector<Slot> slots_;
  std::vector<std::string_view> keys_;  // views into names_' keys (stable: node-based map)
  std::vector<const NameEntry*> entries_;
  // Names of the policy reduced to their last two labels ("lencr.org" for ".o.lencr.org"),
  // as hashes (open addressing, 0 = empty): a host whose last two labels hash to none of
  // them matches no name entry, which settles most requests in one probe. Off when some
  // suffix entry has a single label (".org"): then any host may match.
  static std::string_view last_two_labels(std::string_view name);
  static std::uint64_t tail_hash(std::string_view s);
  bool tail_may_match(const Request& req) const;
  std::vector<std::uint64_t> tails_;
  bool tail_filter_ = false;
  std::uint64_t suffix_labels_ = 0;
  std::size_t max_suffix_labels_ = 0;  // the highest bit set in suffix_labels_
  std::vector<CidrLevel> cidr_levels_;
};

}  // namespace authbypass
