#include "helper_answers.h"

namespace authbypass::helper {

void Answers::error(std::string_view channel, std::string_view message) {
  squid::append_error(text_, channel, message);
}

void Answers::broken(std::string_view channel, std::string_view message) {
  squid::append_broken(text_, channel, message);
}

void Answers::withdraw_bypasses(std::string_view why, std::vector<WithdrawnBypass>& withdrawn) {
  if (bypasses_.empty()) return;
  std::string rewritten;
  rewritten.reserve(text_.size());
  std::size_t at = 0;
  for (const Bypass& b : bypasses_) {
    rewritten.append(text_, at, b.begin - at);
    squid::append_error(rewritten, std::string_view(text_).substr(b.begin, b.channel), why);
    at = b.end;
    withdrawn.push_back(b.rule);
  }
  rewritten.append(text_, at, std::string::npos);
  text_.swap(rewritten);
  bypasses_.clear();
}

}  // namespace authbypass::helper
