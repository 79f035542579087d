#include "authbypass/icap_request.h"

#include "text.h"

namespace authbypass::icap {

namespace {
constexpr std::size_t kMaxValue = kMaxUrlLength + 1024;  // longer values are cut (never match)
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

Translated translate(const EncapsulatedRequest& r) {
  Translated t;
  std::string_view l = r.request_line;
  if (std::size_t eol = l.find_first_of("\r\n"); eol != std::string_view::npos)
    l = l.substr(0, eol);
  t.src = std::string(trim(r.client_ip.value_or("")).substr(0, 64));
  std::size_t sp1 = l.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : l.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp1 == 0 || sp2 == std::string_view::npos ||
      sp2 == sp1 + 1) {
    t.url = std::string(l.substr(0, 512));
    t.method = "-";
    t.error = "malformed encapsulated request line";
    return t;
  }
  t.method = std::string(l.substr(0, std::min<std::size_t>(sp1, 64)));
  std::string_view target = l.substr(sp1 + 1, sp2 - sp1 - 1).substr(0, kMaxValue);
  if (!target.empty() && target[0] == '/') {
    std::string_view host = trim(r.host.value_or(""));
    if (host.empty()) {
      t.url = std::string(target.substr(0, 512));
      t.error = "origin-form request target without a Host header";
      return t;
    }
    t.url = "http://" + std::string(host.substr(0, 1024)) + std::string(target);
  } else {
    t.url = std::string(target);
  }
  t.user_agent = std::string(trim(r.user_agent.value_or("")).substr(0, kMaxValue));
  return t;
}

std::optional<std::int64_t> content_length(std::optional<std::string_view> v) {
  if (!v) return -1;
  std::string_view s = trim(*v);
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

int status_of(std::string_view line) {
  if (line.substr(0, 5) != "HTTP/") return -1;
  std::size_t sp = line.find(' ');
  if (sp == std::string_view::npos || line.size() < sp + 4) return -1;
  int code = 0;
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    if (line[i] < '0' || line[i] > '9') return -1;
    code = code * 10 + (line[i] - '0');
  }
  return code;
}

std::string media_type(std::string_view ct) {
  std::string out(trim(ct.substr(0, ct.find(';'))));
  for (char& c : out) c = text::lower(c);
  return out;
}

}  // namespace authbypass::icap
