#include "authbypass/audit.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <tuple>

#include "authbypass/policy.h"
#include "text.h"

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

// Index of the first byte of s[0..n) a JSON string cannot hold as is: '"', '\\', a
// control byte, 0x7f or non-ASCII (n if none). 16 bytes per step.
std::size_t json_special(const char* s, std::size_t n) {
#if defined(__SSE2__)
  if (n >= 16) {
    return text::first_flagged16(s, n, [](const char* p) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      // Signed compare: bytes >= 0x80 are negative, so "< 0x20" also catches them.
      const __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                                                  _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f))),
                                     _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
      return static_cast<unsigned>(_mm_movemask_epi8(m));
    });
  }
#endif
  if (n >= 8 && n < 16) {  // an address, a short host: two overlapping words cover it
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t high = 0x8080808080808080ull;
    auto special = [](std::uint64_t x) {
      auto zero_byte = [](std::uint64_t v) { return (v - ones) & ~v & high; };
      return ((x & high) | ((x - 0x20 * ones) & ~x & high) | zero_byte(x ^ (0x7f * ones)) |
              zero_byte(x ^ ('"' * ones)) | zero_byte(x ^ ('\\' * ones))) != 0;
    };
    std::uint64_t a;
    std::uint64_t b;
    std::memcpy(&a, s, 8);
    std::memcpy(&b, s + n - 8, 8);
    if (!special(a) && !special(b)) return n;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return i;
  }
  return n;
}

// Appends `,"name":"value"` (nothing for an empty value). `key` is `,"name":"`.
void field(std::string& out, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  if (json_special(value.data(), value.size()) == value.size()) {  // the common case
    out.append(key).append(value) += '"';
    return;
  }
  out.append(key.substr(0, key.size() - 1));
  append_json_string(out, value);
}

void number(std::string& out, std::string_view name, std::int64_t value) {
  if (value < 0) return;
  out += ",\"";
  out += name;
  out += "\":";
  out += std::to_string(value);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  // Bytes that need attention: '"', '\\', controls, and everything non-ASCII.
  out += '"';
  auto plain_run = [&](std::size_t from) {
    return from + json_special(s.data() + from, s.size() - from);
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
    std::uint32_t cp = 0;
    std::size_t len = text::utf8_sequence(s, i, &cp);
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
  field(out, ",\"component\":\"", e.component);
  field(out, ",\"event\":\"", e.event);
  field(out, ",\"rule\":\"", e.rule);
  field(out, ",\"owner\":\"", e.owner);
  field(out, ",\"ticket\":\"", e.ticket);
  field(out, ",\"policy_sha256\":\"", e.policy_sha256);
}

}  // namespace

std::string audit_fixed_fields(const AuditEvent& e) {
  std::string out;
  append_fixed(out, e);
  return out;
}

void append_audit_request_fields(std::string& out, const AuditEvent& e) {
  field(out, ",\"src\":\"", e.src);
  field(out, ",\"method\":\"", e.method);
  field(out, ",\"url\":\"", e.url);
  field(out, ",\"host\":\"", e.host);
  field(out, ",\"user_agent\":\"", e.user_agent);
}

namespace {

// An audit timestamp in two parts: "YYYY-MM-DDTHH:MM:SS" (valid until the thread's next
// call) and ".mmmZ".
struct TimestampParts {
  std::string_view second;
  char milli[5];
};

TimestampParts timestamp_parts(std::chrono::system_clock::time_point ts) {
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
  return {cached,
          {'.', static_cast<char>('0' + milli / 100), static_cast<char>('0' + milli / 10 % 10),
           static_cast<char>('0' + milli % 10), 'Z'}};
}

}  // namespace

std::string audit_timestamp(std::chrono::system_clock::time_point ts) {
  const TimestampParts t = timestamp_parts(ts);
  std::string text(t.second);
  text.append(t.milli, sizeof t.milli);
  return text;
}

void append_audit_json(std::string& out, const AuditEvent& e,
                       std::chrono::system_clock::time_point ts) {
  const TimestampParts parts = timestamp_parts(ts);
  const char(&stamp)[5] = parts.milli;
  // The common event (fixed fields made beforehand, no numbers, nothing to escape): one
  // resize and plain copies.
  const std::string_view second_text = parts.second;
  const std::pair<std::string_view, std::string_view> fields[] = {
      {",\"file\":\"", e.file},
      {",\"src\":\"", e.src},
      {",\"method\":\"", e.method},
      {",\"url\":\"", e.url},
      {",\"host\":\"", e.host},
      {",\"user_agent\":\"", e.user_agent},
      {",\"content_type\":\"", e.content_type},
      {",\"verdict\":\"", e.verdict},
      {",\"reason\":\"", e.reason}};
  // fields[1..5] (src..user_agent) are in request_json when that is set.
  const bool have_request = !e.request_json.empty();
  auto skipped = [&](std::size_t i) { return have_request && i >= 1 && i <= 5; };
  bool plain = !e.fixed_json.empty() && e.status < 0 && e.bytes < 0;
  std::size_t total =
      8 + second_text.size() + sizeof stamp + e.fixed_json.size() + 2 + e.request_json.size();
  // Values that sit back to back in memory (a caller's record keeps a request's fields
  // so) are checked as one run: one scan instead of one per field.
  const char* run = nullptr;
  std::size_t run_len = 0;
  auto check_run = [&] {
    plain = plain && json_special(run, run_len) == run_len;
    run_len = 0;
  };
  for (std::size_t i = 0; i < std::size(fields) && plain; ++i) {
    const auto& [key, value] = fields[i];
    if (value.empty() || skipped(i)) continue;
    total += key.size() + value.size() + 1;
    if (run_len != 0 && run + run_len == value.data()) {
      run_len += value.size();
      continue;
    }
    if (run_len != 0) check_run();
    run = value.data();
    run_len = value.size();
  }
  if (run_len != 0) check_run();
  if (plain) {
    const std::size_t at = out.size();
    out.resize(at + total);
    char* w = out.data() + at;
    auto put = [&](std::string_view v) {
      std::memcpy(w, v.data(), v.size());
      w += v.size();
    };
    put("{\"ts\":\"");
    put(second_text);
    put(std::string_view(stamp, sizeof stamp));
    *w++ = '"';
    put(e.fixed_json);
    for (std::size_t i = 0; i < std::size(fields); ++i) {
      const auto& [key, value] = fields[i];
      if (i == 1) put(e.request_json);  // empty unless set
      if (value.empty() || skipped(i)) continue;
      put(key);
      put(value);
      *w++ = '"';
    }
    put("}\n");
    return;
  }

  out += "{\"ts\":\"";
  out += second_text;
  out.append(stamp, sizeof stamp);
  out += '"';
  if (!e.fixed_json.empty()) {
    out += e.fixed_json;
  } else {
    append_fixed(out, e);
  }
  for (std::size_t i = 0; i < 6; ++i) {
    if (i == 1) out += e.request_json;  // empty unless set
    if (!skipped(i)) field(out, fields[i].first, fields[i].second);
  }
  number(out, "status", e.status);
  field(out, fields[6].first, fields[6].second);
  number(out, "bytes", e.bytes);
  field(out, fields[7].first, fields[7].second);
  field(out, fields[8].first, fields[8].second);
  out += "}\n";
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

AuditEvent rule_event(std::string_view component, std::string_view event, const Rule* rule,
                      std::string_view policy_sha256, const AuditRequest& req) {
  AuditEvent e;
  e.component = component;
  e.event = event;
  if (rule) {
    e.rule = rule->id;
    e.owner = rule->owner;
    e.ticket = rule->ticket;
  }
  e.policy_sha256 = policy_sha256;
  e.src = req.src;
  e.method = req.method;
  e.url = req.url;
  e.host = req.host;
  e.user_agent = req.user_agent;
  return e;
}

AuditEvent icap_event(std::string_view event, std::string_view policy_sha256,
                      const AuditRequest& req, const AuditOutcome& o) {
  AuditEvent e = rule_event("icap", event, nullptr, policy_sha256, req);
  // Every outcome fact as given (the rule may be an id alone: a mark named a rule the
  // policy in force does not have).
  std::tie(e.rule, e.owner, e.ticket, e.status, e.content_type, e.bytes, e.verdict, e.reason) =
      std::tie(o.rule, o.owner, o.ticket, o.status, o.content_type, o.bytes, o.verdict, o.reason);
  return e;
}

AuditEvent policy_event(std::string_view component, bool loaded, std::string_view file,
                        std::string_view policy_sha256, std::span<const std::string> errors,
                        std::string& reason_buf) {
  AuditEvent e;
  e.component = component;
  e.event = loaded ? "policy_loaded" : "policy_rejected";
  e.file = file;
  e.policy_sha256 = policy_sha256;
  reason_buf.clear();
  if (!loaded) {
    for (const std::string& err : errors) {
      if (!reason_buf.empty()) reason_buf += "; ";
      reason_buf += err;
    }
    e.reason = reason_buf;
  }
  return e;
}

}  // namespace authbypass
