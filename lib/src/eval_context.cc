#include "authbypass/eval_context.h"

namespace authbypass {

EvalContext::UserAgent* EvalContext::find_slow(std::uint64_t serial, std::string_view text,
                                               bool claim) {
  for (std::size_t k = 0; k < recent_.size(); ++k) {
    if (recent_[k].used && recent_[k].serial == serial) {
      current_ = static_cast<std::uint8_t>(k);
      return &recent_[k];
    }
  }
  // The same text under another serial (another Request object parsed it): the entry
  // answers for the new serial from now on.
  for (std::size_t k = 0; k < recent_.size(); ++k) {
    if (recent_[k].used && recent_[k].text == text) {
      current_ = static_cast<std::uint8_t>(k);
      recent_[k].serial = serial;
      return &recent_[k];
    }
  }
  if (!claim) return nullptr;
  current_ = next_;
  next_ = static_cast<std::uint8_t>((next_ + 1) % recent_.size());
  UserAgent& fresh = recent_[current_];
  fresh.serial = serial;
  fresh.text.assign(text);
  fresh.used = true;
  fresh.memos = {};
  fresh.next = 0;
  return &fresh;
}

void EvalContext::remember(std::uint64_t serial, std::string_view text, const void* regex,
                           std::uint64_t policy, bool match) {
  UserAgent* entry = find(serial, text, true);
  entry->memos[entry->next++ % entry->memos.size()] = RegexMemo{regex, policy, match};
}

}  // namespace authbypass
