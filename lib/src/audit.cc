#include "authbypass/audit.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace authbypass {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_u_escape(std::string& out, unsigned cp) {
  out += "\\u";
  out += kHex[(cp >> 12) & 15];
  out += kHex[(cp >> 8) & 15];
  out += kHex[(cp >> 4) & 15];
  out += kHex[cp & 15];
}

// Length of the valid UTF-8 sequence at s[i] (>= 2), or 0 if it is not one.
std::size_t utf8_sequence(std::string_view s, std::size_t i, unsigned& cp) {
  auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return len;
}

void field(std::string& out, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  out += ",\"";
  out += name;
  out += "\":";
  append_json_string(out, value);
}

void number(std::string& out, std::string_view name, std::int64_t value) {
  if (value < 0) return;
  out += ",\"";
  out += name;
  out += "\":";
  out += std::to_string(value);
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  // Bytes that need attention: '"', '\\', controls, and everything non-ASCII.
  static constexpr auto kPlain = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x7f; ++c) t[c] = c != '"' && c != '\\';
    return t;
  }();
  out += '"';
  // Eight bytes at a time while none needs attention; the lowest flagged byte of each
  // mask is exact (false positives only sit above a true one), the rest byte by byte.
  auto plain_run = [&](std::size_t from) {
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t high = 0x8080808080808080ull;
    std::size_t j = from;
    while (j + 8 <= s.size()) {
      std::uint64_t x;
      std::memcpy(&x, s.data() + j, 8);
      const std::uint64_t q = x ^ (0x22 * ones), b = x ^ (0x5c * ones), d = x ^ (0x7f * ones);
      const std::uint64_t m = (x & high) | ((x - 0x20 * ones) & ~x & high) |
                              ((q - ones) & ~q & high) | ((b - ones) & ~b & high) |
                              ((d - ones) & ~d & high);
      if (m != 0) return j + static_cast<std::size_t>(std::countr_zero(m) / 8);
      j += 8;
    }
    while (j < s.size() && kPlain[static_cast<unsigned char>(s[j])]) ++j;
    return j;
  };
  for (std::size_t i = 0; i < s.size();) {
    std::size_t run = plain_run(i);
    if (run > i) {
      out.append(s.substr(i, run - i));
      i = run;
      if (i == s.size()) break;
    }
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          append_u_escape(out, c);  // other controls and DEL
      }
      ++i;
      continue;
    }
    unsigned cp = 0;
    std::size_t len = utf8_sequence(s, i, cp);
    if (len == 0) {
      append_u_escape(out, 0xfffd);  // invalid byte: replaced, never copied
      ++i;
    } else if (cp == 0x2028 || cp == 0x2029 || (cp >= 0x80 && cp < 0xa0)) {
      append_u_escape(out, cp);  // line separators and C1 controls, escaped
      i += len;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  out += '"';
}

namespace {

void append_fixed(std::string& out, const AuditEvent& e) {
  field(out, "component", e.component);
  field(out, "event", e.event);
  field(out, "rule", e.rule);
  field(out, "owner", e.owner);
  field(out, "ticket", e.ticket);
  field(out, "policy_sha256", e.policy_sha256);
}

}  // namespace

std::string audit_fixed_fields(const AuditEvent& e) {
  std::string out;
  append_fixed(out, e);
  return out;
}

void append_audit_json(std::string& out, const AuditEvent& e,
                       std::chrono::system_clock::time_point ts) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(ts.time_since_epoch()).count();
  // "YYYY-MM-DDTHH:MM:SS" changes once a second: format it once per second per thread.
  thread_local long long cached_second = -1;
  thread_local char cached[32];
  long long second = ms / 1000;
  if (second != cached_second) {
    std::time_t secs = static_cast<std::time_t>(second);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d",
                  (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100,
                  tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
    cached_second = second;
  }
  const int milli = static_cast<int>(ms % 1000);
  const char stamp[] = {'.', static_cast<char>('0' + milli / 100),
                        static_cast<char>('0' + milli / 10 % 10),
                        static_cast<char>('0' + milli % 10), 'Z'};
  out += "{\"ts\":\"";
  out += cached;
  out.append(stamp, sizeof stamp);
  out += '"';
  if (!e.fixed_json.empty()) {
    out += e.fixed_json;
  } else {
    append_fixed(out, e);
  }
  field(out, "file", e.file);
  field(out, "src", e.src);
  field(out, "method", e.method);
  field(out, "url", e.url);
  field(out, "host", e.host);
  field(out, "user_agent", e.user_agent);
  number(out, "status", e.status);
  field(out, "content_type", e.content_type);
  number(out, "bytes", e.bytes);
  field(out, "verdict", e.verdict);
  field(out, "reason", e.reason);
  out += "}\n";
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool AuditLog::open_file(const std::string& path, std::string* error) {
  path_ = path;
  return reopen(error);
}

std::optional<int> syslog_facility(std::string_view name) {
  static constexpr std::pair<std::string_view, int> kNames[] = {
      {"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV}, {"daemon", LOG_DAEMON},
      {"user", LOG_USER},     {"local0", LOG_LOCAL0},     {"local1", LOG_LOCAL1},
      {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},     {"local4", LOG_LOCAL4},
      {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},     {"local7", LOG_LOCAL7}};
  for (const auto& [n, f] : kNames) {
    if (n == name) return f;
  }
  return std::nullopt;
}

void AuditLog::enable_syslog(const char* ident, int facility) {
  ::openlog(ident, LOG_PID | LOG_NDELAY, facility < 0 ? LOG_AUTHPRIV : facility);
  syslog_ = true;
}

bool AuditLog::reopen(std::string* error) {
  if (path_.empty()) return true;
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    if (error) *error = "cannot open audit log " + path_ + ": " + std::strerror(errno);
    return false;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return true;
}

bool AuditLog::write(std::string_view lines) {
  if (lines.empty()) return true;
  if (syslog_) {
    std::string_view rest = lines;
    while (!rest.empty()) {
      std::size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      ::syslog(LOG_INFO, "%.*s", static_cast<int>(line.size()), line.data());
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    }
  }
  if (fd_ < 0) return path_.empty();
  return write_all(fd_, lines);
}

}  // namespace authbypass
