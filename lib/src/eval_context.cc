#include "authbypass/eval_context.h"

namespace authbypass {

EvalContext::UserAgent* EvalContext::find(std::string_view ua, bool claim) {
  if (UserAgent& cur = recent_[current_]; cur.used && cur.text == ua) return &cur;
  for (std::size_t k = 0; k < recent_.size(); ++k) {
    if (recent_[k].used && recent_[k].text == ua) {
      current_ = static_cast<std::uint8_t>(k);
      return &recent_[k];
    }
  }
  if (!claim) return nullptr;
  current_ = next_;
  next_ = static_cast<std::uint8_t>((next_ + 1) % recent_.size());
  UserAgent& fresh = recent_[current_];
  fresh.text.assign(ua);
  fresh.used = true;
  fresh.memos = {};
  fresh.next = 0;
  return &fresh;
}

int EvalContext::recall(std::string_view ua, const void* regex, std::uint64_t policy) {
  const UserAgent* entry = find(ua, false);
  if (entry == nullptr) return -1;
  for (const RegexMemo& m : entry->memos) {
    if (m.regex == regex && m.policy == policy) return m.match ? 1 : 0;
  }
  return -1;
}

void EvalContext::remember(std::string_view ua, const void* regex, std::uint64_t policy,
                           bool match) {
  UserAgent* entry = find(ua, true);
  entry->memos[entry->next++ % entry->memos.size()] = RegexMemo{regex, policy, match};
}

}  // namespace authbypass
