// A compiled Boost.Regex: perl syntax, case-insensitive, compiled once at load.
#pragma once

#include <boost/regex.hpp>
#include <memory>
#include <string>
#include <string_view>

namespace authbypass {

// Longest input a regex is run on. Boost's backtracking budget grows with the square of
// the input length (8 KB of "aaa...b" against (a+)+$ takes ~0.4 s before Boost gives up);
// at 1 KiB the worst case is a few milliseconds. Longer input is a fault (no match).
inline constexpr std::size_t kMaxRegexSubject = 1024;

// `^` and `$` anchor at the subject's start and end only (Perl without /m).
class Regex {
 public:
  // Compiles `pattern`; on error returns nullptr and sets *error.
  static std::shared_ptr<const Regex> compile(std::string_view pattern, std::string* error);

  enum class Result { kNoMatch, kMatch, kFault };

  // Whole-string match (path_regex) / search anywhere (user_agent_regex). kFault when Boost
  // gives up on a runaway match (std::runtime_error), or when `s` is longer than
  // kMaxRegexSubject: callers treat it as no match.
  Result full_match(std::string_view s) const;
  Result search(std::string_view s) const;

  // Literal text (lower case) every match starts with, empty if none is known; a subject
  // that does not start with it is answered without running Boost.
  const std::string& required_prefix() const { return prefix_; }

 private:
  boost::regex re_;
  std::string prefix_;
  bool anchored_ = false;  // the pattern starts with ^, so search() may use prefix_ too
};

}  // namespace authbypass
