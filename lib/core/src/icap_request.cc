#include "authbypass/icap_request.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "file_util.h"
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

// ---------------------------------------------------------------------------------------
// Decision mode.

std::string_view header_name(std::string_view line) {
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return {};
  return line.substr(0, colon);
}

bool is_mark_header(std::string_view line) {
  std::string_view name = header_name(line);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  if (name.size() != kMarkHeader.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (text::lower(name[i]) != text::lower(kMarkHeader[i])) return false;
  }
  return true;
}

namespace {
constexpr std::size_t kMinSecret = 32;
constexpr std::size_t kMaxSecret = 256;
constexpr std::size_t kMaxSecretFile = 4096;

bool secret_char(char c) {
  return text::is_alpha(c) || text::is_digit(c) || c == '-' || c == '_';
}
}  // namespace

std::optional<std::string> parse_shared_secret(std::string_view content, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<std::string> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  std::string_view s = content;
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  if (s.empty()) return fail("is empty");
  for (char c : s) {
    if (!secret_char(c)) {
      return fail(
          "must hold one line of letters, digits, '-' and '_' only (hex or base64url; "
          "`authbypass secret` makes one)");
    }
  }
  if (s.size() < kMinSecret) {
    return fail("holds a secret of " + std::to_string(s.size()) + " characters: at least " +
                std::to_string(kMinSecret) + " needed (`authbypass secret` makes 64)");
  }
  if (s.size() > kMaxSecret) {
    return fail("holds a secret longer than " + std::to_string(kMaxSecret) + " characters");
  }
  return std::string(s);
}

std::optional<std::string> read_shared_secret_file(const std::string& path, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<std::string> {
    if (error) *error = "shared secret file " + path + " " + why;
    return std::nullopt;
  };
  const files::ReadOptions options{.max_bytes = kMaxSecretFile, .regular_only = true};
  std::string content;
  const files::ReadResult r = files::read_file(path, options, content);
  if (r.error == files::ReadError::kOpen) return fail("cannot be opened: " + r.reason(options));
  if (r.error == files::ReadError::kNotRegular) return fail("is not a regular file");
  if (r.mode & (S_IROTH | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(r.mode & 07777));
    return fail(std::string("is readable or writable by every user (mode ") + mode +
                "): it must be readable only by the c-icap and proxy users (chmod 0640, "
                "group of c-icap)");
  }
  if (r.error == files::ReadError::kTooLarge) return fail("is over 4 KiB: not a secret file");
  if (!r) return fail("cannot be read: " + r.reason(options));
  if (content.empty()) return fail("is empty");
  std::string why;
  auto secret = parse_shared_secret(content, &why);
  if (!secret) return fail(why);
  return secret;
}

std::string generate_shared_secret() {
  unsigned char bytes[32];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got < sizeof bytes) {
    int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("no source of randomness (getrandom, /dev/urandom)");
    while (got < sizeof bytes) {
      ssize_t n = ::read(fd, bytes + got, sizeof bytes - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got < sizeof bytes) throw std::runtime_error("short read from /dev/urandom");
  }
  std::string out;
  authbypass::text::append_hex(out, bytes, sizeof bytes);
  ::explicit_bzero(bytes, sizeof bytes);
  return out;
}

}  // namespace authbypass::icap
