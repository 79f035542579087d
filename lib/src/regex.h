// A compiled Boost.Regex: perl syntax, case-insensitive, compiled once at load.
#pragma once

#include <boost/regex.hpp>
#include <memory>
#include <string>
#include <string_view>

namespace authbypass {

class Regex {
 public:
  // Compiles `pattern`; on error returns nullptr and sets *error.
  static std::shared_ptr<const Regex> compile(std::string_view pattern, std::string* error);

  enum class Result { kNoMatch, kMatch, kFault };

  // Whole-string match (path_regex) / search anywhere (user_agent_regex). kFault when Boost
  // gives up on a runaway match (std::runtime_error): callers treat it as no match.
  Result full_match(std::string_view s) const;
  Result search(std::string_view s) const;

 private:
  boost::regex re_;
};

}  // namespace authbypass
