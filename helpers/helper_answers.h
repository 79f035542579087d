// The Squid helper's answers of one batch, in order, as Squid reads them. Each OK answer
// keeps its rule beside it, so that the batch's bypasses can be withdrawn (turned into
// ERR) when their audit events could not be written, without reading the text back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/decision.h"
#include "authbypass/policy.h"
#include "authbypass/squid_helper.h"

namespace authbypass::helper {

// A withdrawn bypass: the rule it named, by index in the policy of that generation.
struct WithdrawnBypass {
  std::uint32_t rule_index = 0;
  std::uint64_t policy = 0;  // Policy::generation()
};

class Answers {
 public:
  bool empty() const { return text_.empty(); }
  std::size_t size() const { return text_.size(); }
  std::string_view text() const { return text_; }
  void reserve(std::size_t bytes) { text_.reserve(bytes); }
  void clear() {
    text_.clear();
    bypasses_.clear();
  }
  void swap(Answers& other) noexcept {
    text_.swap(other.text_);
    bypasses_.swap(other.bypasses_);
  }

  // "[channel ]OK log=<rule> ..." for a bypass, "[channel ]ERR" otherwise
  // (squid::append_decision). `policy` is the generation of the policy that decided.
  void decision(std::string_view channel, const Decision& d, std::uint64_t policy) {
    const std::size_t begin = text_.size();
    squid::append_decision(text_, channel, d);
    if (d.bypass() && d.rule != nullptr)
      bypasses_.push_back({begin, text_.size(), channel.size(), {d.rule->index, policy}});
  }
  // "[channel ]ERR message=..." (squid::append_error).
  void error(std::string_view channel, std::string_view message);
  // "[channel ]BH message=..." (squid::append_broken).
  void broken(std::string_view channel, std::string_view message);

  // Turns every OK answer of the batch into "[channel ]ERR message=`why`", leaving every
  // other answer as it is, and appends the bypasses so withdrawn to `withdrawn`.
  void withdraw_bypasses(std::string_view why, std::vector<WithdrawnBypass>& withdrawn);

 private:
  struct Bypass {
    std::size_t begin = 0, end = 0;  // the line in text_, LF included
    std::size_t channel = 0;         // length of its channel id (0: none)
    WithdrawnBypass rule;
  };
  std::string text_;
  std::vector<Bypass> bypasses_;  // in text order
};

}  // namespace authbypass::helper
