#include "authbypass/eval_context.h"

namespace authbypass {

EvalContext::UserAgent* EvalContext::find_slow(std::string_view ua, std::uint64_t key, bool claim) {
  for (std::size_t k = 0; k < recent_.size(); ++k) {
    if (recent_[k].key == key && recent_[k].used && recent_[k].text == ua) {
      current_ = static_cast<std::uint8_t>(k);
      return &recent_[k];
    }
  }
  if (!claim) return nullptr;
  current_ = next_;
  next_ = static_cast<std::uint8_t>((next_ + 1) % recent_.size());
  UserAgent& fresh = recent_[current_];
  fresh.key = key;
  fresh.text.assign(ua);
  fresh.used = true;
  fresh.memos = {};
  fresh.next = 0;
  return &fresh;
}

void EvalContext::remember(std::string_view ua, const void* regex, std::uint64_t policy,
                           bool match) {
  UserAgent* entry = find(ua, key_of(ua), true);
  entry->memos[entry->next++ % entry->memos.size()] = RegexMemo{regex, policy, match};
}

}  // namespace authbypass
