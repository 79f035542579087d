#include "compiled_regex.h"

#include <stdexcept>

namespace authbypass {

std::shared_ptr<const Regex> Regex::compile(std::string_view pattern, std::string* error) {
  auto r = std::make_shared<Regex>();
  try {
    r->re_.assign(pattern.begin(), pattern.end(), boost::regex::perl | boost::regex::icase);
  } catch (const boost::regex_error& e) {
    if (error) *error = e.what();
    return nullptr;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return nullptr;
  }
  return r;
}

Regex::Result Regex::full_match(std::string_view s) const {
  if (s.size() > kMaxRegexSubject) return Result::kFault;
  try {
    return boost::regex_match(s.begin(), s.end(), re_) ? Result::kMatch : Result::kNoMatch;
  } catch (const std::runtime_error&) {
    return Result::kFault;
  }
}

Regex::Result Regex::search(std::string_view s) const {
  if (s.size() > kMaxRegexSubject) return Result::kFault;
  try {
    return boost::regex_search(s.begin(), s.end(), re_) ? Result::kMatch : Result::kNoMatch;
  } catch (const std::runtime_error&) {
    return Result::kFault;
  }
}

}  // namespace authbypass
