// Line framing of the Squid helper's input: chunks in, request lines out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "authbypass/squid_helper.h"

namespace authbypass::helper {

// Splits input chunks into LF-terminated lines of at most squid::kMaxLineBytes (LF not
// included), whatever the chunk boundaries. A longer line is never buffered whole: it is
// skipped to its LF and reported once, with its first kKeptPrefix bytes (enough to find
// its channel id). Buffers at most kMaxLineBytes.
class LineFramer {
 public:
  static constexpr std::size_t kKeptPrefix = 64;

  // Calls on_line(line) for each complete line and on_too_long(prefix) for each over-long
  // one, in input order. A line split across chunks is delivered with the chunk that ends it.
  template <class OnLine, class OnTooLong>
  void consume(std::string_view chunk, OnLine&& on_line, OnTooLong&& on_too_long) {
    while (!chunk.empty()) {
      const std::size_t nl = chunk.find('\n');
      const std::string_view part = chunk.substr(0, nl);
      if (discarding_) {
        if (nl == std::string_view::npos) return;
        on_too_long(std::string_view(prefix_));
        discarding_ = false;
      } else if (pending_.size() + part.size() > squid::kMaxLineBytes) {
        prefix_.assign(pending_.empty() ? part.substr(0, kKeptPrefix)
                                        : std::string_view(pending_).substr(0, kKeptPrefix));
        pending_.clear();
        discarding_ = true;
        continue;  // this part again, now discarding
      } else if (nl == std::string_view::npos) {
        pending_.append(part);
        return;
      } else if (!pending_.empty()) {
        pending_.append(part);
        on_line(std::string_view(pending_));
        pending_.clear();
      } else {
        on_line(part);
      }
      chunk.remove_prefix(nl + 1);
    }
  }

  // At end of input: a last line without LF is delivered (or reported) as if it had one.
  template <class OnLine, class OnTooLong>
  void finish(OnLine&& on_line, OnTooLong&& on_too_long) {
    if (discarding_) {
      on_too_long(std::string_view(prefix_));
    } else if (!pending_.empty()) {
      on_line(std::string_view(pending_));
    }
    pending_.clear();
    discarding_ = false;
  }

  void reserve(std::size_t bytes) { pending_.reserve(bytes); }

 private:
  std::string pending_, prefix_;
  bool discarding_ = false;
};

}  // namespace authbypass::helper
