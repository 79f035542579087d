// Collecting the errors of one input (a policy, an endpoint list) so that an admin sees
// them all in one run: every error is counted, the first kMaxKeptErrors are kept.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "authbypass/policy.h"

namespace authbypass {

inline constexpr std::size_t kMaxKeptErrors = 50;

// An error at a place in a file; to_string() is "file:line:column: message".
struct LocatedError {
  SourceLocation where;
  std::string message;
  std::string to_string() const { return where.to_string() + ": " + message; }
};

// "... and N more errors": the line that ends a list from which N errors were dropped.
inline std::string more_errors_line(std::size_t dropped) {
  return "... and " + std::to_string(dropped) + " more errors";
}

// Adds errors to `out` (the caller's list, empty at first) up to kMaxKeptErrors and
// counts the rest.
template <typename Entry>
class ErrorList {
 public:
  explicit ErrorList(std::vector<Entry>& out) : out_(out) {}

  void add(Entry e) {
    if (out_.size() < kMaxKeptErrors) {
      out_.push_back(std::move(e));
    } else {
      ++dropped_;
    }
    ++count_;
  }
  bool any() const { return count_ > 0; }
  std::size_t count() const { return count_; }  // kept and dropped
  std::size_t dropped() const { return dropped_; }

  // Once every error is in: a list of texts gets more_errors_line() when some were dropped.
  void finish() requires std::is_same_v<Entry, std::string> {
    if (dropped() > 0) out_.push_back(more_errors_line(dropped()));
  }

 private:
  std::vector<Entry>& out_;
  std::size_t count_ = 0;
  std::size_t dropped_ = 0;
};

}  // namespace authbypass
