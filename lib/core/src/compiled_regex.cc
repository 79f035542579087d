#include "compiled_regex.h"

#include <stdexcept>

namespace authbypass {

namespace {

bool special(char c) {
  return std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos ||
         static_cast<unsigned char>(c) >= 0x80;
}

// True if `p` may have an alternation '|' outside every group and bracket expression
// (then no literal start holds for the whole pattern).
bool top_level_alternation(std::string_view p) {
  int depth = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      ++i;
    } else if (c == '[') {
      std::size_t j = i + 1;
      if (j < p.size() && p[j] == '^') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      for (; j < p.size() && p[j] != ']'; ++j) {
        if (p[j] == '[' && j + 1 < p.size() &&
            (p[j + 1] == ':' || p[j + 1] == '=' || p[j + 1] == '.')) {
          std::size_t close = p.find(std::string{p[j + 1], ']'}, j + 2);
          if (close == std::string_view::npos) return true;  // unknown shape: assume the worst
          j = close + 1;
        } else if (p[j] == '\\') {
          ++j;
        }
      }
      if (j >= p.size()) return true;
      i = j;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (c == '|' && depth <= 0) {
      return true;
    }
  }
  return false;
}

// The literal run at the start of `p` (after an optional ^), lower-cased; a character
// made optional by a following quantifier is left out.
std::string literal_start(std::string_view p) {
  if (!p.empty() && p[0] == '^') p.remove_prefix(1);
  std::size_t n = 0;
  while (n < p.size() && !special(p[n])) ++n;
  if (n > 0 && n < p.size() && (p[n] == '?' || p[n] == '*' || p[n] == '{')) --n;
  std::string out;
  for (std::size_t k = 0; k < n; ++k) {
    char c = p[k];
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

bool starts_with_icase(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (std::size_t i = 0; i < lower_prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower_prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const Regex> Regex::compile(std::string_view pattern, std::string* error) {
  auto r = std::make_shared<Regex>();
  try {
    r->re_.assign(pattern.begin(), pattern.end(),
                  boost::regex::perl | boost::regex::icase | boost::regex::no_mod_m);
  } catch (const boost::regex_error& e) {
    if (error) *error = e.what();
    return nullptr;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return nullptr;
  }
  r->anchored_ = !pattern.empty() && pattern[0] == '^';
  if (!top_level_alternation(pattern)) r->prefix_ = literal_start(pattern);
  return r;
}

Regex::Result Regex::full_match(std::string_view s) const {
  if (s.size() > kMaxRegexSubject) return Result::kFault;
  if (!starts_with_icase(s, prefix_)) return Result::kNoMatch;
  try {
    return boost::regex_match(s.begin(), s.end(), re_) ? Result::kMatch : Result::kNoMatch;
  } catch (const std::runtime_error&) {
    return Result::kFault;
  }
}

Regex::Result Regex::search(std::string_view s) const {
  if (s.size() > kMaxRegexSubject) return Result::kFault;
  if (anchored_ && !starts_with_icase(s, prefix_)) return Result::kNoMatch;
  try {
    return boost::regex_search(s.begin(), s.end(), re_) ? Result::kMatch : Result::kNoMatch;
  } catch (const std::runtime_error&) {
    return Result::kFault;
  }
}

}  // namespace authbypass
