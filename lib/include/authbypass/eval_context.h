// The evaluation context: what Policy::decide may remember between decisions, owned by
// its caller. Requests and policies stay plain values; the memos live here.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace authbypass {

// Memos of `user_agent_regex` outcomes for the last few distinct User-Agents (a proxy sees
// few distinct ones), so that a warm context answers a repeated User-Agent without running
// its regexes again. A memo is keyed by the User-Agent's exact text, the regex and the
// generation of the policy that owns it (Policy::generation(), never reused), so it never
// carries an answer across User-Agents or policies. Regex faults are never remembered.
//
// Not thread-safe: one context per thread (the Squid helper keeps one per process, the
// ICAP service one per worker thread). Forgetting it costs only speed: a fresh context, or
// Policy::decide without one, gives the same decisions.
class EvalContext {
 public:
  EvalContext() = default;
  EvalContext(const EvalContext&) = delete;
  EvalContext& operator=(const EvalContext&) = delete;

  // The remembered outcome of `regex` (of the policy of generation `policy`) on the
  // User-Agent `ua`: 1 match, 0 no match, -1 not known.
  int recall(std::string_view ua, const void* regex, std::uint64_t policy) {
    const UserAgent* entry = find(ua, key_of(ua), false);
    if (entry == nullptr) return -1;
    for (const RegexMemo& m : entry->memos) {
      if (m.regex == regex && m.policy == policy) return m.match ? 1 : 0;
    }
    return -1;
  }
  // Remembers an outcome for recall(). Does not allocate once the context has seen
  // User-Agents as long as `ua`.
  void remember(std::string_view ua, const void* regex, std::uint64_t policy, bool match);

 private:
  struct RegexMemo {
    const void* regex = nullptr;
    std::uint64_t policy = 0;
    bool match = false;
  };
  struct UserAgent {
    std::uint64_t key = 0;  // key_of(text): compared before the text
    std::string text;
    bool used = false;
    std::array<RegexMemo, 4> memos{};
    std::uint8_t next = 0;  // the memo to overwrite next
  };
  // A cheap summary of `ua` (its length and outer bytes): equal texts have equal keys.
  static std::uint64_t key_of(std::string_view ua) {
    std::uint64_t head = 0, tail = 0;
    if (ua.size() >= 8) {
      std::memcpy(&head, ua.data(), 8);
      std::memcpy(&tail, ua.data() + ua.size() - 8, 8);
    } else if (!ua.empty()) {
      std::memcpy(&head, ua.data(), ua.size());
    }
    return (head ^ (tail << 1 | tail >> 63)) + ua.size();
  }
  // The entry for `ua` (whose key_of is `key`); a User-Agent not seen lately takes the
  // oldest entry when `claim`, else nullptr.
  UserAgent* find(std::string_view ua, std::uint64_t key, bool claim) {
    if (UserAgent& cur = recent_[current_]; cur.key == key && cur.used && cur.text == ua)
      return &cur;
    return find_slow(ua, key, claim);
  }
  UserAgent* find_slow(std::string_view ua, std::uint64_t key, bool claim);

  std::array<UserAgent, 8> recent_{};
  std::uint8_t current_ = 0;  // the entry found last
  std::uint8_t next_ = 0;     // the entry to overwrite next
};

}  // namespace authbypass
