#include "authbypass/request.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "host_name.h"
#include "text.h"

namespace authbypass {

namespace {

constexpr text::ByteSet kConnectBad("/?#@");
constexpr text::ByteSet kAuthorityEnd("/?#");
constexpr text::ByteSet kHostBad(":[]%");

constexpr text::ByteSet kTokenChars(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~");

// Byte classes of host names in parse_plain_url.
enum : std::uint8_t {
  kOther = 0,  // needs the general parser
  kPlain,
  kDot,
  kSlash,
};
// Host names: a-z 0-9 - _ and '.'; the name ends at '/'. Anything else (upper case, ':',
// '@', '%', '?', '#', non-ASCII) takes the general parser.
constexpr std::array<std::uint8_t, 256> kHostClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kPlain;
  for (int c = '0'; c <= '9'; ++c) t[c] = kPlain;
  t['-'] = t['_'] = kPlain;
  t['.'] = kDot;
  t['/'] = kSlash;
  return t;
}();

// RFC 3986 §5.2.4 on an absolute path, in place.
void remove_dot_segments(std::string& p) {
  std::size_t w = 0;
  std::size_t i = 0;
  const std::size_t n = p.size();
  while (i < n) {
    std::size_t j = p.find('/', i + 1);
    if (j == std::string::npos) j = n;
    const std::size_t seg_len = j - i - 1;
    const bool last = j == n;
    const char* seg = p.data() + i + 1;
    if (seg_len == 1 && seg[0] == '.') {
      if (last) p[w++] = '/';
    } else if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
      while (w > 0 && p[w - 1] != '/') --w;
      if (w > 0) --w;
      if (last) p[w++] = '/';
    } else {
      p[w++] = '/';
      std::memmove(p.data() + w, seg, seg_len);
      w += seg_len;
    }
    i = j;
  }
  if (w == 0) p[w++] = '/';
  p.resize(w);
}

// True iff the raw path `p` has a segment made only of '.', "%2e" and "%20" (any case)
// other than a plain "." or "..": readers disagree on whether it is a dot-segment.
bool has_odd_dot_segment(std::string_view p) {
  std::size_t i = 0;
  while (i < p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    const std::string_view seg = p.substr(i, j - i);
    if (!seg.empty() && seg != "." && seg != ".." && (seg[0] == '.' || seg[0] == '%')) {
      bool dots_and_spaces = true;
      for (std::size_t k = 0; k < seg.size() && dots_and_spaces;) {
        if (seg[k] == '.') {
          ++k;
        } else if (seg[k] == '%' && k + 3 <= seg.size() && seg[k + 1] == '2' &&
                   (seg[k + 2] == 'e' || seg[k + 2] == 'E' || seg[k + 2] == '0')) {
          k += 3;
        } else {
          dots_and_spaces = false;
        }
      }
      if (dots_and_spaces) return true;
    }
    i = j + 1;
  }
  return false;
}

}  // namespace

constexpr std::uint8_t kConnectBit = 8;

namespace {

[[gnu::always_inline]] inline std::uint8_t method_bit_of(std::string_view m) {
  switch (m.size()) {
    case 3:
      return m == "GET" ? 1 : m == "PUT" ? 16 : 0;
    case 4:
      return m == "HEAD" ? 2 : m == "POST" ? 4 : 0;
    case 5:
      return m == "PATCH" ? 128 : 0;
    case 6:
      return m == "DELETE" ? 32 : 0;
    case 7:
      return m == "CONNECT" ? kConnectBit : m == "OPTIONS" ? 64 : 0;
    default:
      return 0;
  }
}

}  // namespace

std::uint8_t method_bit(std::string_view m) {
  return method_bit_of(m);
}

bool Request::parse_plain_url() {
  const std::string_view u = url;
  std::size_t i;
  bool https = false;
  if (u.size() >= 8 && std::memcmp(u.data(), "http://", 7) == 0) {
    i = 7;
  } else if (u.size() >= 9 && std::memcmp(u.data(), "https://", 8) == 0) {
    i = 8;
    https = true;
  } else {
    return false;
  }
  const auto* b = reinterpret_cast<const unsigned char*>(u.data());
  const std::size_t n = u.size();

  // The name: labels of 1..63 bytes, at most 253 bytes, not ending in a number (that
  // could be an IP address): the general parser decides those.
  const std::size_t h0 = i;
  std::uint64_t dots = 0;
  bool dots_known = false;
  if (const text::HostScan hs = text::scan_host_name(u.data() + h0, n - h0); hs.known) {
    // Names under 64 bytes, from their dot mask: no empty label (a leading, trailing or
    // doubled dot), the last label not starting with a digit.
    i = h0 + hs.end;
    if (i < n && b[i] != '/') return false;
    dots = hs.dots;
    if (hs.end == 0 || (dots & 1) != 0 || (dots & (dots >> 1)) != 0 || (dots >> (hs.end - 1)) != 0)
      return false;
    const std::size_t last = dots == 0 ? 0 : 64 - static_cast<std::size_t>(__builtin_clzll(dots));
    if (text::is_digit(u[h0 + last])) return false;
    dots_known = true;
  } else {
    std::size_t label = i;
    std::uint8_t k = kSlash;
    for (; i < n; ++i) {
      k = kHostClass[b[i]];
      if (k == kPlain) continue;
      if (k != kDot) break;
      if (i == label || i - label > 63) return false;
      label = i + 1;
    }
    if (i < n && k != kSlash) return false;
    if (i == label || i - label > 63 || i - h0 > 253 || text::is_digit(u[label])) return false;
  }
  const std::string_view name = u.substr(h0, i - h0);

  // The path up to '?': nothing to decode, no dot-segment.
  const std::size_t p0 = i;
  std::size_t q = n;
  while (i < n) {
    i += text::find_path_special(u.data() + i, n - i, u.data());
    if (i == n) break;
    if (b[i] == '?') {
      q = i;
      break;
    }
    if (b[i] != '.' || b[i - 1] == '/') return false;  // "/." may start a dot-segment
    ++i;
  }
  // An empty segment: origins that merge slashes read another path (general parser).
  if (text::has_double_slash(u.data() + p0, q - p0)) return false;
  std::string_view query_text;
  if (q < n) {
    query_text = u.substr(q + 1);
    if (text::has_space_or_control(query_text) || query_text.find('#') != std::string_view::npos)
      return false;
  }
  // Committed: nothing below fails.
  match_path_ok = true;
  match_path_why = nullptr;
  text::assign_if_changed(scheme, https ? std::string_view("https") : std::string_view("http"));
  port = https ? 443 : 80;
  host.assign(name);
  host_dots = dots;
  host_dots_known = dots_known;
  path = p0 == q ? std::string_view("/") : u.substr(p0, q - p0);
  set_match_path_lower(path);
  if (q < n) query = query_text;
  return true;
}

void Request::set_match_path_lower(std::string_view p) {
  if (!text::has_upper(p)) {
    match_path = p;
    return;
  }
  text::lower_into(p, match_path_buf_);
  match_path = match_path_buf_;
}

void Request::set_match_path(std::string_view p) {
  match_path = {};
  match_path_ok = false;
  if (text::has_double_slash(p.data(), p.size())) {
    match_path_why = "the path has an empty segment ('//'), which slash-merging origins drop";
    return;
  }
  const bool escaped = p.find('%') != std::string_view::npos;
  if (!escaped) {
    // Nothing to decode. The URL has no control bytes or spaces (refused earlier).
    for (char c : p) {
      if (c == '\\' || static_cast<unsigned char>(c) >= 0x80) {
        match_path_why = "the path has a backslash or a byte outside printable ASCII";
        return;
      }
    }
    set_match_path_lower(p);
  } else {
    // Decoded once, lower-cased. The escapes that name a delimiter, a control byte or a
    // non-ASCII byte are refused, so the decoded path has the raw path's segments.
    match_path_buf_.resize(p.size());
    std::size_t w = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      auto c = static_cast<unsigned char>(p[i]);
      if (c == '%') {
        const int hi = i + 2 < p.size() ? text::hex_value(p[i + 1]) : -1;
        const int lo = hi < 0 ? -1 : text::hex_value(p[i + 2]);
        if (lo < 0) {
          match_path_why = "the path has a malformed percent-escape";
          return;
        }
        c = static_cast<unsigned char>(hi * 16 + lo);
        if (text::is_ctl(c) || c >= 0x80) {
          match_path_why = "the path has an encoded control byte or non-ASCII byte";
          return;
        }
        if (c == '/' || c == '\\' || c == '?' || c == '#' || c == ';' || c == '%') {
          match_path_why =
              "the path has an encoded '/', '\\', '?', '#', ';' or '%', which origins decode "
              "differently";
          return;
        }
        i += 2;
      } else if (c == '\\' || c >= 0x80) {
        match_path_why = "the path has a backslash or a byte outside printable ASCII";
        return;
      }
      match_path_buf_[w++] = text::lower(static_cast<char>(c));
    }
    match_path_buf_.resize(w);
    match_path = match_path_buf_;
  }
  const bool dots = match_path.find("/.") != std::string_view::npos;
  if ((dots || escaped) && has_odd_dot_segment(p)) {
    match_path = {};
    match_path_why =
        "the path has a dot-segment that is encoded or not plain (%2e%2e, '...', '..%20')";
    return;
  }
  if (dots) {
    // Only a "/." can start a dot-segment (each one written as plain dots, checked above).
    if (match_path.data() != match_path_buf_.data()) match_path_buf_.assign(match_path);
    remove_dot_segments(match_path_buf_);
    match_path = match_path_buf_;
  }
  match_path_ok = true;
}

Request::Request(const Request& other) : RequestFields(other) {
  view_like(other);
}

Request& Request::operator=(const Request& other) {
  if (this != &other) {
    RequestFields::operator=(other);
    view_like(other);
  }
  return *this;
}

void Request::view_like(const Request& other) {
  // Each view is into other.url, other.match_path_buf_ or static text (kept as it is).
  auto repoint = [&](std::string_view v) -> std::string_view {
    auto inside = [&](const std::string& s) {
      return !v.empty() && v.data() >= s.data() && v.data() + v.size() <= s.data() + s.size();
    };
    if (inside(other.url)) return {url.data() + (v.data() - other.url.data()), v.size()};
    if (inside(other.match_path_buf_))
      return {match_path_buf_.data() + (v.data() - other.match_path_buf_.data()), v.size()};
    return v;
  };
  user_agent = recent_ua_[current_ua_].raw;
  user_agent_lower = recent_ua_[current_ua_].lower;
  user_agent_serial = recent_ua_[current_ua_].serial;
  path = repoint(other.path);
  params = repoint(other.params);
  query = repoint(other.query);
  match_path = repoint(other.match_path);
}

bool Request::parse(const RequestInput& in) {
  return parse_impl(in, true);
}

bool Request::parse_reference(const RequestInput& in) {
  return parse_impl(in, false);
}

bool Request::parse_impl(const RequestInput& in, bool shortcut) {
  error_.clear();
  url.assign(in.url.substr(0, kMaxUrlLength));
  // The fields parse_plain_url does not set; it sets all the others when it succeeds.
  host_kind = HostKind::kName;
  host_ip = IpAddress{};
  params = {};
  query = {};

  auto fail = [this](const char* msg) {
    error_ = msg;
    return false;
  };
  auto reset_url_fields = [this] {
    scheme.clear();
    host.clear();
    host_dots = 0;
    host_dots_known = false;
    port = 0;
    path = {};
    match_path = {};
    match_path_ok = false;
    match_path_why = nullptr;
  };

  // Method: an HTTP token, compared case-sensitively.
  // A common method (one with a bit) is a token: only other methods are checked.
  const std::uint8_t bit = method_bit_of(in.method);
  const bool method_ok = bit != 0 || (!in.method.empty() && in.method.size() <= kMaxMethodLength &&
                                      std::all_of(in.method.begin(), in.method.end(),
                                                  [](char c) { return kTokenChars.has(c); }));
  if (!method_ok) {
    method.clear();
    method_bit = 0;
    is_connect = false;
    reset_url_fields();
    if (in.method.empty()) return fail("missing method");
    if (in.method.size() > kMaxMethodLength) return fail("method too long");
    return fail("method is not an HTTP token");
  }
  text::assign_if_changed(method, in.method);
  method_bit = bit;
  is_connect = bit == kConnectBit;

  // URL, from the Request's own copy (the views point into it).
  if (shortcut && !is_connect && in.url.size() <= kMaxUrlLength && parse_plain_url())
    return parse_client(in);
  reset_url_fields();
  std::string_view u = url;
  if (in.url.empty()) return fail("missing URL");
  if (in.url.size() > kMaxUrlLength) return fail("URL longer than 8192 bytes");
  if (text::has_space_or_control(u)) return fail("URL contains a space or control character");

  std::string_view authority;
  std::string_view rest;
  if (is_connect) {
    authority = u;  // authority-form: host:port
    if (kConnectBad.find_in(authority) != std::string_view::npos)
      return fail("CONNECT target is not host:port");
  } else {
    std::size_t colon = u.find("://");
    if (colon == std::string_view::npos) return fail("URL is not absolute (no scheme://)");
    std::string_view sch = u.substr(0, colon);
    if (text::iequals(sch, "http")) {
      scheme = "http";
      port = 80;
    } else if (text::iequals(sch, "https")) {
      scheme = "https";
      port = 443;
    } else {
      return fail("URL scheme is not http or https");
    }
    u.remove_prefix(colon + 3);
    std::size_t end = kAuthorityEnd.find_in(u);
    authority = u.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : u.substr(end);
    std::size_t at = authority.rfind('@');
    if (at != std::string_view::npos) authority.remove_prefix(at + 1);  // drop userinfo
  }
  if (authority.empty()) return fail("URL has no host");

  // Host and port.
  std::string_view host_text;
  std::string_view port_text;
  bool has_port = false;
  if (authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 literal");
    host_text = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("garbage after IPv6 literal");
      port_text = after.substr(1);
      has_port = true;
    }
    auto ip = IpAddress::parse(host_text);
    if (!ip || !ip->v6) return fail("bad IPv6 literal");
    host_kind = HostKind::kIpv6;
    host_ip = *ip;
    host = ip->to_string();
  } else {
    std::size_t colon = authority.rfind(':');
    host_text = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    if (kHostBad.find_in(host_text) != std::string_view::npos) return fail("bad character in host");
    if (!normalize_host_name(host_text, host, &error_)) return false;
    if (ends_in_number(host)) {
      auto ip = IpAddress::parse(host);
      if (!ip) return fail("host is a numeric form other than a dotted-quad IPv4 address");
      host_kind = HostKind::kIpv4;
      host_ip = *ip;
    }
  }
  if (has_port && !port_text.empty()) {
    unsigned long p = 0;
    if (!text::parse_decimal(port_text, 65535, p) || p == 0) return fail("bad port");
    port = static_cast<std::uint16_t>(p);
  } else if (is_connect) {
    return fail("CONNECT target has no port");
  }

  // Path, params, query. A fragment is not part of the path, but Squid forwards it: a
  // URL that has one is never matched on its path.
  if (!is_connect) {
    const std::size_t hash = rest.find('#');
    const std::string_view sent = rest.substr(0, hash);
    const std::size_t qmark = sent.find('?');
    std::string_view p = sent.substr(0, qmark);
    if (qmark != std::string_view::npos) query = sent.substr(qmark + 1);
    const std::size_t semi = p.find(';');
    if (semi != std::string_view::npos) {
      params = p.substr(semi + 1);
      p = p.substr(0, semi);
    }
    path = p.empty() ? std::string_view("/") : p;
    if (hash != std::string_view::npos) {
      match_path_why = "the URL has a fragment ('#'), which Squid forwards to the origin";
    } else if (semi != std::string_view::npos) {
      match_path_why = "the path has ;params, which origins resolve differently";
    } else {
      set_match_path(path);
    }
  }

  return parse_client(in);
}

namespace {

// Serials for User-Agent texts, unique in the process (every Request draws from here).
std::uint64_t next_user_agent_serial() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

bool Request::parse_client(const RequestInput& in) {
  auto fail = [this](const char* msg) {
    error_ = msg;
    return false;
  };
  // User agent and client address.
  if (in.user_agent.size() > kMaxUserAgentLength) return fail("User-Agent longer than 4096 bytes");
  // A warm Request often sees the same UA again: known by its id when the caller numbers
  // User-Agents, else by its text; its lower-case form is kept.
  const std::uint64_t id = in.user_agent_id;
  if (const RecentUa& cur = recent_ua_[current_ua_];
      id != 0 ? id != cur.id : in.user_agent != cur.raw) {
    std::size_t k = 0;
    for (; k < recent_ua_.size(); ++k) {
      const RecentUa& r = recent_ua_[k];
      if (id != 0 ? r.id == id : r.raw == in.user_agent) break;
    }
    if (k == recent_ua_.size()) {  // new: it takes the oldest slot
      k = recent_ua_next_;
      recent_ua_next_ = static_cast<std::uint8_t>((k + 1) % recent_ua_.size());
      RecentUa& r = recent_ua_[k];
      r.raw.assign(in.user_agent);
      text::lower_into(r.raw, r.lower);
      r.id = id;
      r.serial = r.raw.empty() ? 0 : next_user_agent_serial();
    }
    current_ua_ = static_cast<std::uint8_t>(k);
  }
  user_agent = recent_ua_[current_ua_].raw;
  user_agent_lower = recent_ua_[current_ua_].lower;
  user_agent_serial = recent_ua_[current_ua_].serial;
  // Parsed every time: an IPv4 parse costs less than comparing with and keeping the last
  // address's text.
  if (in.src.empty()) {
    src.reset();
    return true;
  }
  if (!src) src.emplace();
  if (!IpAddress::parse_into(in.src, *src)) {  // in place: no copy of a fresh address
    src.reset();
    return fail("client address is not an IP address");
  }
  return true;
}

}  // namespace authbypass
