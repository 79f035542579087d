#include "authbypass/eval_context.h"

namespace authbypass {

EvalContext::UserAgent* EvalContext::find_slow(std::uint64_t serial, std::string_view text,
                                               bool claim) {
  SerialSlot& slot = by_serial_[serial % kSerialSlots];
  for (std::size_t k = 0; k < recent_.size(); ++k) {
    if (recent_[k].used && recent_[k].text == text) {
      slot = {serial, static_cast<std::uint8_t>(k + 1)};
      return &recent_[k];
    }
  }
  if (!claim) return nullptr;
  const std::uint8_t k = next_;
  next_ = static_cast<std::uint8_t>((next_ + 1) % recent_.size());
  // The entry changes text: no serial may lead to it any more.
  for (SerialSlot& s : by_serial_) {
    if (s.entry == k + 1) s = {};
  }
  UserAgent& fresh = recent_[k];
  fresh.text.assign(text);
  fresh.used = true;
  fresh.memos = {};
  fresh.next = 0;
  slot = {serial, static_cast<std::uint8_t>(k + 1)};
  return &fresh;
}

void EvalContext::remember(std::uint64_t serial, std::string_view text, const void* regex,
                           std::uint64_t policy, bool match) {
  UserAgent* entry = find(serial, text, true);
  entry->memos[entry->next++ % entry->memos.size()] = RegexMemo{regex, policy, match};
}

}  // namespace authbypass
