// The evaluation context: what Policy::decide may remember between decisions, owned by
// its caller. Requests and policies stay plain values; the memos live here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace authbypass {

// Memos of `user_agent_regex` outcomes for the last few distinct User-Agents (a proxy sees
// few distinct ones), so that a warm context answers a repeated User-Agent without running
// its regexes again. A memo is keyed by the User-Agent's text, the regex and the
// generation of the policy that owns it (Policy::generation(), never reused), so it never
// carries an answer across User-Agents or policies. A User-Agent is recognized by its
// Request::user_agent_serial (one text per serial) when this context has seen that serial
// lately, else by comparing the text. Regex faults are never remembered. Does not allocate
// once it has seen User-Agents as long.
//
// Not thread-safe: one context per thread (the Squid helper keeps one per process, the
// ICAP service decides without one). Forgetting it costs only speed: a fresh context, or
// Policy::decide without one, gives the same decisions.
class EvalContext {
 public:
  EvalContext() = default;
  EvalContext(const EvalContext&) = delete;
  EvalContext& operator=(const EvalContext&) = delete;

  // The remembered outcome of `regex` (of the policy of generation `policy`) on the
  // User-Agent `text` of serial `serial`: 1 match, 0 no match, -1 not known.
  int recall(std::uint64_t serial, std::string_view text, const void* regex, std::uint64_t policy) {
    const UserAgent* entry = find(serial, text, false);
    if (entry == nullptr) return -1;
    for (const RegexMemo& m : entry->memos) {
      if (m.regex == regex && m.policy == policy) return m.match ? 1 : 0;
    }
    return -1;
  }
  // Remembers an outcome for recall().
  void remember(std::uint64_t serial, std::string_view text, const void* regex,
                std::uint64_t policy, bool match);

 private:
  struct RegexMemo {
    const void* regex = nullptr;
    std::uint64_t policy = 0;
    bool match = false;
  };
  struct UserAgent {
    std::string text;
    bool used = false;
    std::array<RegexMemo, 4> memos{};
    std::uint8_t next = 0;  // the memo to overwrite next
  };
  // A serial seen lately and the entry of its text (entry + 1; 0: none). Direct-mapped by
  // serial: requests parsed by different Request objects carry different serials for one
  // text, and each finds the entry without comparing the text again.
  struct SerialSlot {
    std::uint64_t serial = 0;
    std::uint8_t entry = 0;
  };
  static constexpr std::size_t kSerialSlots = 64;

  // The entry for `text` (of serial `serial`); a User-Agent not seen lately takes the
  // oldest entry when `claim`, else nullptr.
  UserAgent* find(std::uint64_t serial, std::string_view text, bool claim) {
    if (const SerialSlot& s = by_serial_[serial % kSerialSlots]; s.entry != 0 && s.serial == serial)
      return &recent_[s.entry - 1];
    return find_slow(serial, text, claim);
  }
  UserAgent* find_slow(std::uint64_t serial, std::string_view text, bool claim);

  std::array<UserAgent, 8> recent_{};
  std::array<SerialSlot, kSerialSlots> by_serial_{};
  std::uint8_t next_ = 0;  // the entry to overwrite next
};

}  // namespace authbypass
