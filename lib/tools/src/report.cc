#include "authbypass/report.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <span>

#include "authbypass/audit.h"
#include "authbypass/request.h"
#include "authbypass/stats.h"
#include "json_scanner.h"
#include "text.h"

namespace authbypass {

namespace {

constexpr std::size_t kMaxLine = 1 << 20;  // longer lines are malformed
constexpr std::size_t kMaxSamples = 5;

// ---- time ----

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (!text::is_digit(c)) return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

std::string format_time_ms(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

// The fields of one event that the report uses.
struct Event {
  std::int64_t ts = -1;
  std::string_view component, event, rule, owner, ticket, src, host, url, user_agent, reason,
      verdict, content_type;
  std::int64_t status = -1, bytes = -1;
};

enum class Field : std::uint8_t {
  kTs,
  kComponent,
  kEvent,
  kRule,
  kOwner,
  kTicket,
  kSrc,
  kHost,
  kUrl,
  kUserAgent,
  kReason,
  kVerdict,
  kContentType,
  kStatus,
  kBytes,
  kOther
};

Field field_of(std::string_view k) {
  switch (k.size()) {
    case 2:
      return k == "ts" ? Field::kTs : Field::kOther;
    case 3:
      return k == "src" ? Field::kSrc : k == "url" ? Field::kUrl : Field::kOther;
    case 4:
      return k == "rule" ? Field::kRule : k == "host" ? Field::kHost : Field::kOther;
    case 5:
      return k == "event"   ? Field::kEvent
             : k == "owner" ? Field::kOwner
             : k == "bytes" ? Field::kBytes
                            : Field::kOther;
    case 6:
      return k == "ticket"   ? Field::kTicket
             : k == "reason" ? Field::kReason
             : k == "status" ? Field::kStatus
                             : Field::kOther;
    case 7:
      return k == "verdict" ? Field::kVerdict : Field::kOther;
    case 9:
      return k == "component" ? Field::kComponent : Field::kOther;
    case 10:
      return k == "user_agent" ? Field::kUserAgent : Field::kOther;
    case 12:
      return k == "content_type" ? Field::kContentType : Field::kOther;
    default:
      return Field::kOther;
  }
}

// Parses one JSON audit line. Decoded strings live in `bufs`: one buffer per field, all
// made before the first decode, so that no buffer moves while `ev` holds views into them
// (a vector grown mid-line moved short, in-place strings: heap-use-after-free found by
// fuzz_report, tests/fuzz/corpus/fuzz_report/uaf-escaped-field).
bool parse_event(std::string_view line, Event& ev, std::vector<std::string>& bufs) {
  JsonScanner j(line);
  if (!j.eat('{')) return false;
  if (bufs.size() < static_cast<std::size_t>(Field::kOther))
    bufs.resize(static_cast<std::size_t>(Field::kOther));
  std::string key_buf;
  if (j.eat('}')) return false;  // an empty object is no event
  for (;;) {
    std::string_view key;
    if (!j.string(key, key_buf) || !j.eat(':')) return false;
    const Field f = field_of(key);
    if (f == Field::kStatus || f == Field::kBytes) {
      std::int64_t n = 0;
      if (!j.number(n)) return false;
      (f == Field::kStatus ? ev.status : ev.bytes) = n;
    } else if (f != Field::kOther && j.peek('"')) {
      std::string_view v;
      if (!j.string(v, bufs[static_cast<std::size_t>(f)])) return false;
      switch (f) {
        case Field::kTs: {
          auto t = parse_time_ms(v);
          if (!t) return false;
          ev.ts = *t;
          break;
        }
        case Field::kComponent:
          ev.component = v;
          break;
        case Field::kEvent:
          ev.event = v;
          break;
        case Field::kRule:
          ev.rule = v;
          break;
        case Field::kOwner:
          ev.owner = v;
          break;
        case Field::kTicket:
          ev.ticket = v;
          break;
        case Field::kSrc:
          ev.src = v;
          break;
        case Field::kHost:
          ev.host = v;
          break;
        case Field::kUrl:
          ev.url = v;
          break;
        case Field::kUserAgent:
          ev.user_agent = v;
          break;
        case Field::kReason:
          ev.reason = v;
          break;
        case Field::kVerdict:
          ev.verdict = v;
          break;
        case Field::kContentType:
          ev.content_type = v;
          break;
        default:
          break;
      }
    } else if (!j.skip_value()) {
      return false;
    }
    if (j.eat(',')) continue;
    if (!j.eat('}')) return false;
    return j.at_end() && ev.ts >= 0 && !ev.event.empty();
  }
}

// The latest snapshot of each process of one adapter, by PID.
using Snapshots = std::map<std::int64_t, StatsSnapshot>;

std::span<const std::uint64_t> counter_values(const StatsSnapshot& st, StatsSource source) {
  return source == StatsSource::kHelper ? std::span<const std::uint64_t>(st.helper)
                                        : std::span<const std::uint64_t>(st.icap);
}

std::string_view counter_key_at(StatsSource source, std::size_t i) {
  return source == StatsSource::kHelper ? counter_key(static_cast<HelperCounter>(i))
                                        : counter_key(static_cast<icap::Counter>(i));
}

// The snapshots of one adapter summed (saturating): counters in stats.h's order, rules.
struct StatsTotals {
  std::vector<std::pair<std::string_view, std::uint64_t>> counters;
  std::map<std::string, RuleHits, std::less<>> rules;
};

std::uint64_t add_saturating(std::uint64_t a, std::uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

StatsTotals sum_stats(const Snapshots& snaps, StatsSource source) {
  StatsTotals t;
  const std::size_t n = source == StatsSource::kHelper ? kHelperCounterCount : icap::kCounterCount;
  for (std::size_t i = 0; i < n; ++i) t.counters.emplace_back(counter_key_at(source, i), 0);
  for (const auto& [pid, st] : snaps) {
    const auto values = counter_values(st, source);
    for (std::size_t i = 0; i < n; ++i)
      t.counters[i].second = add_saturating(t.counters[i].second, values[i]);
    for (const auto& [id, h] : st.rules) {
      RuleHits& sum = t.rules[id];
      sum.bypass = add_saturating(sum.bypass, h.bypass);
      sum.shadow = add_saturating(sum.shadow, h.shadow);
    }
  }
  return t;
}

// The host of an absolute URL or of a CONNECT "host:port", lower-cased into `out`.
std::string_view host_of_url(std::string_view url, std::string& out) {
  std::size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  std::size_t end = rest.find_first_of("/?#");
  std::string_view auth = rest.substr(0, end);
  if (std::size_t at = auth.rfind('@'); at != std::string_view::npos) auth.remove_prefix(at + 1);
  if (!auth.empty() && auth.front() == '[') {
    std::size_t close = auth.find(']');
    auth = auth.substr(1, close == std::string_view::npos ? auth.size() : close - 1);
  } else if (std::size_t colon = auth.rfind(':'); colon != std::string_view::npos) {
    auth = auth.substr(0, colon);
  }
  text::lower_into(auth, out);
  return out;
}

// A Squid access-log line of the `authbypass` logformat (or any format whose fields are
// space-separated with a leading epoch timestamp, the client, the method, the URL and an
// "ea=" field). Returns false if it is not such a line.
bool parse_access_line(std::string_view line, Event& ev, std::string& host_buf) {
  std::size_t ea = line.find(" ea=");
  if (ea == std::string_view::npos) return false;
  std::vector<std::string_view> f;
  f.reserve(16);
  for (std::size_t i = 0; i < line.size();) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    if (j > i) f.push_back(line.substr(i, j - i));
    i = j;
  }
  if (f.size() < 7) return false;
  // %ts.%03tu
  std::string_view ts = f[0];
  std::size_t dot = ts.find('.');
  std::int64_t secs = 0;
  for (char c : ts.substr(0, dot)) {
    if (!text::is_digit(c)) return false;
    secs = secs * 10 + (c - '0');
    if (secs > 100'000'000'000LL) return false;
  }
  int ms = 0;
  if (dot != std::string_view::npos && !digits(ts, dot + 1, 3, ms)) return false;
  ev.ts = secs * 1000 + ms;
  ev.src = f[2];
  ev.component = "squid";
  for (std::size_t k = 0; k < f.size(); ++k) {
    if (f[k].starts_with("ea=")) ev.rule = f[k].substr(3);
  }
  // The method is the first all-upper-case token after the status; the URL follows it.
  for (std::size_t k = 3; k + 1 < f.size(); ++k) {
    std::string_view m = f[k];
    bool upper = !m.empty() && m.size() <= 16;
    for (char c : m) upper = upper && c >= 'A' && c <= 'Z';
    if (upper) {
      ev.url = f[k + 1];
      if (std::size_t slash = f[3].find('/'); slash != std::string_view::npos) {
        std::int64_t st = 0;
        for (char c : f[3].substr(slash + 1)) {
          if (!text::is_digit(c)) continue;
          if (st > 99'999) {  // no HTTP status (and no signed overflow on a digit flood)
            st = -1;
            break;
          }
          st = st * 10 + (c - '0');
        }
        ev.status = st;
      }
      break;
    }
  }
  if (ev.url.empty()) return false;
  ev.host = host_of_url(ev.url, host_buf);
  ev.event = (ev.rule.empty() || ev.rule == "-") ? "access" : "bypass";
  return true;
}

// ---- bounded counting tables ----

// Counters by key, at most ReportBuilder::kMaxKeys keys: later keys count in other().
// Open addressing: power-of-two slots of a hash tag and an entry number, entries in
// insertion order (a deque, so references to values stay valid as keys are added).
template <typename V>
class Table {
 public:
  // The value for `key`, or the "(other)" bucket once the table is full.
  V& at(std::string_view key) {
    if (slots_.empty()) rehash(64);
    const std::uint64_t h = hash(key);
    Slot& slot = slots_[slot_of(key, h)];
    if (slot.entry != 0) return entries_[slot.entry - 1].second;
    if (entries_.size() >= ReportBuilder::kMaxKeys) {
      ++overflowed_;
      return other_;
    }
    entries_.emplace_back(std::string(key), V{});
    slot = Slot{static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(entries_.size())};
    V& v = entries_.back().second;
    if (entries_.size() * 2 > slots_.size()) rehash(slots_.size() * 2);
    return v;
  }
  // The value for `key`, or nullptr if the table does not have it.
  const V* find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    const Slot& slot = slots_[slot_of(key, hash(key))];
    return slot.entry == 0 ? nullptr : &entries_[slot.entry - 1].second;
  }
  const std::deque<std::pair<std::string, V>>& entries() const { return entries_; }
  const V& other() const { return other_; }
  std::uint64_t overflowed() const { return overflowed_; }

 private:
  struct Slot {
    std::uint32_t tag = 0;
    std::uint32_t entry = 0;  // 1-based index into entries_; 0: empty
  };
  static std::uint64_t hash(std::string_view key) {
    const std::uint64_t h = std::hash<std::string_view>{}(key);
    return h ^ (h >> 29) ^ (h << 35);  // the tag (high bits) and the slot (low bits) differ
  }
  // The slot of `key` (hash h), or the empty slot where it would go.
  std::size_t slot_of(std::string_view key, std::uint64_t h) const {
    const auto tag = static_cast<std::uint32_t>(h >> 32);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.entry == 0 || (slot.tag == tag && entries_[slot.entry - 1].first == key)) return i;
    }
  }
  void rehash(std::size_t n) {
    slots_.assign(n, Slot{});
    const std::size_t mask = n - 1;
    for (std::size_t e = 0; e < entries_.size(); ++e) {
      const std::uint64_t h = hash(entries_[e].first);
      std::size_t i = h & mask;
      while (slots_[i].entry != 0) i = (i + 1) & mask;
      slots_[i] = Slot{static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(e + 1)};
    }
  }

  std::vector<Slot> slots_;
  std::deque<std::pair<std::string, V>> entries_;
  V other_{};
  std::uint64_t overflowed_ = 0;
};

struct RuleCounts {
  std::uint64_t helper_bypass = 0, squid_bypass = 0, verified = 0, blocked = 0, shadow = 0;
  std::string owner, ticket;
  std::uint64_t total() const { return helper_bypass + squid_bypass + verified + blocked + shadow; }
};

struct Burst {
  std::int64_t minute = -1;
  std::uint64_t count = 0;
};

template <typename V, typename F>
std::vector<std::pair<std::string, V>> top(const Table<V>& t, std::size_t n, F weight) {
  std::vector<std::pair<std::string, V>> rows(t.entries().begin(), t.entries().end());
  std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    auto wa = weight(a.second), wb = weight(b.second);
    return wa != wb ? wa > wb : a.first < b.first;
  });
  if (rows.size() > n) rows.resize(n);
  return rows;
}

std::string with_commas(std::uint64_t v) {
  const std::string d = std::to_string(v);
  std::string out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

// Aligned text table.
std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows,
                  const std::vector<bool>& right) {
  std::vector<std::size_t> w(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) w[c] = header[c].size();
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], r[c].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (std::size_t c = 0; c < r.size(); ++c) {
      std::string cell = r[c];
      std::string pad(w[c] - cell.size(), ' ');
      out += right[c] ? pad + cell : cell + (c + 1 < r.size() ? pad : "");
      if (c + 1 < r.size()) out += "  ";
    }
    return out + "\n";
  };
  std::string out = "  " + line(header);
  for (const auto& r : rows) out += "  " + line(r);
  if (rows.empty()) out += "  (none)\n";
  return out;
}

std::string csv_cell(std::string_view s) {
  bool quote = s.find_first_of(",\"\n\r") != std::string_view::npos;
  std::string out;
  if (!quote) return std::string(s);
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

std::optional<std::int64_t> parse_time_ms(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return std::nullopt;
  std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  if (s.size() == 10) return days * 86'400'000;
  if ((s[10] != 'T' && s[10] != ' ') || !digits(s, 11, 2, h) || s.size() < 19 || s[13] != ':' ||
      !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, se))
    return std::nullopt;
  if (h > 23 || mi > 59 || se > 60) return std::nullopt;
  std::size_t i = 19;
  int ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int n = 0;
    while (i < s.size() && text::is_digit(s[i])) {
      if (n < 3) ms = ms * 10 + (s[i] - '0');
      ++n;
      ++i;
    }
    if (n == 0) return std::nullopt;
    for (; n < 3; ++n) ms *= 10;
  }
  std::int64_t offset_min = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !digits(s, i + 4, 2, om))
      return std::nullopt;
    offset_min = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return ((days * 24 + h) * 60 + mi - offset_min) * 60'000 + se * 1000LL + ms;
}

struct ReportBuilder::State {
  ReportOptions opt;
  std::uint64_t lines = 0, malformed = 0, out_of_range = 0, access_without_bypass = 0;
  std::vector<std::string> malformed_samples;
  std::int64_t first_ts = -1, last_ts = -1;
  std::map<std::string, std::uint64_t, std::less<>> events;  // by "component/event"
  Table<RuleCounts> rules;
  Table<std::uint64_t> clients, hosts, blocked_reasons, blocked_hosts, shadow_hosts,
      ua_off_ca_hosts, off_hours_clients;
  std::uint64_t off_hours = 0;
  Table<Burst> burst_state;
  std::vector<std::tuple<std::string, std::int64_t, std::uint64_t>> bursts;  // client, minute, n
  Table<std::uint8_t> host_in_ca;  // 1 = in some rule's hosts, 2 = not
  std::vector<std::string> bufs;
  std::string host_buf, line_buf, key_buf;
  Snapshots helper_stats, icap_stats;  // the latest snapshot of each process
  std::string stats_error;

  // Case-insensitive search for a lower-case ASCII needle.
  static bool contains_icase(std::string_view hay, std::string_view needle) {
    if (needle.empty() || hay.size() < needle.size()) return false;
    const char first = needle[0];
    for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
      if (text::lower(hay[i]) != first) continue;
      std::size_t k = 1;
      while (k < needle.size() && text::lower(hay[i + k]) == needle[k]) ++k;
      if (k == needle.size()) return true;
    }
    return false;
  }

  bool in_ca_rule(std::string_view host) {
    if (!opt.policy || host.empty()) return true;
    std::uint8_t& v = host_in_ca.at(host);
    if (v == 0) {
      Request req;
      std::string url = "http://" + std::string(host) + "/";
      bool in = false;
      if (req.parse({"GET", url, "", ""})) {
        for (const Rule& r : opt.policy->rules()) {
          for (const HostPattern& h : r.match.hosts) in = in || h.matches(req);
        }
      }
      v = in ? 1 : 2;
    }
    return v == 1;
  }

  void count(const Event& ev) {
    if (opt.since_ms && ev.ts < *opt.since_ms) {
      ++out_of_range;
      return;
    }
    if (opt.until_ms && ev.ts >= *opt.until_ms) {
      ++out_of_range;
      return;
    }
    if (first_ts < 0 || ev.ts < first_ts) first_ts = ev.ts;
    if (ev.ts > last_ts) last_ts = ev.ts;
    key_buf.assign(ev.component.empty() ? std::string_view("?") : ev.component.substr(0, 32));
    key_buf += '/';
    key_buf.append(ev.event.substr(0, 32));
    if (auto it = events.find(key_buf); it != events.end()) {
      ++it->second;
    } else if (events.size() < 64) {
      events.emplace(key_buf, 1);
    } else {
      ++events["(other)"];
    }
    if (ev.event == "access") {
      ++access_without_bypass;
      return;
    }
    const bool squid = ev.component == "squid";
    const bool passage = ev.event == "bypass" || ev.event == "verified" || ev.event == "blocked";
    if (!ev.rule.empty() && (passage || ev.event == "shadow")) {
      RuleCounts& rc = rules.at(ev.rule);
      if (ev.event == "bypass") (squid ? rc.squid_bypass : rc.helper_bypass)++;
      if (ev.event == "verified") ++rc.verified;
      if (ev.event == "blocked") ++rc.blocked;
      if (ev.event == "shadow") ++rc.shadow;
      if (rc.owner.empty() && !ev.owner.empty()) rc.owner.assign(ev.owner.substr(0, 80));
      if (rc.ticket.empty() && !ev.ticket.empty()) rc.ticket.assign(ev.ticket.substr(0, 40));
    }
    std::string_view host = ev.host;
    if (host.empty() && !ev.url.empty()) host = host_of_url(ev.url, host_buf);
    if (passage) {
      if (!ev.src.empty()) ++clients.at(ev.src);
      if (!host.empty()) ++hosts.at(host);
      if (ev.event == "blocked") {
        ++blocked_reasons.at(ev.reason.empty() ? std::string_view("(no reason)") : ev.reason);
        if (!host.empty()) ++blocked_hosts.at(host);
      }
      // Bursts: bypasses from one client within one calendar minute.
      if (!ev.src.empty()) {
        Burst& b = burst_state.at(ev.src);
        const std::int64_t minute = ev.ts / 60'000;
        if (b.minute != minute) {
          b.minute = minute;
          b.count = 0;
        }
        if (++b.count == static_cast<std::uint64_t>(opt.burst_per_minute) + 1 &&
            bursts.size() < 1000) {
          bursts.emplace_back(std::string(ev.src), minute, 0);
        }
        if (b.count > static_cast<std::uint64_t>(opt.burst_per_minute)) {
          for (auto it = bursts.rbegin(); it != bursts.rend(); ++it) {
            if (std::get<0>(*it) == ev.src && std::get<1>(*it) == minute) {
              std::get<2>(*it) = b.count;
              break;
            }
          }
        }
      }
      if (opt.hours) {
        std::time_t secs = static_cast<std::time_t>(ev.ts / 1000);
        std::tm tm{};
        localtime_r(&secs, &tm);
        const auto [from, to] = *opt.hours;
        const bool inside = from <= to ? (tm.tm_hour >= from && tm.tm_hour < to)
                                       : (tm.tm_hour >= from || tm.tm_hour < to);
        if (!inside) {
          ++off_hours;
          if (!ev.src.empty()) ++off_hours_clients.at(ev.src);
        }
      }
    }
    if (ev.event == "shadow" && !host.empty()) {
      key_buf.assign(ev.rule);
      key_buf += ' ';
      key_buf.append(host);
      ++shadow_hosts.at(key_buf);
    }
    // A CryptoAPI / Sign-In Assistant user agent going where no CA rule points.
    if ((passage || ev.event == "shadow") && !ev.user_agent.empty() && !host.empty()) {
      std::string_view ua = ev.user_agent.substr(0, 512);
      if ((contains_icase(ua, "microsoft-cryptoapi") || contains_icase(ua, "msoidcrl")) &&
          !in_ca_rule(host)) {
        ++ua_off_ca_hosts.at(host);
      }
    }
  }

  void add_line(std::string_view line) {
    ++lines;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos) return;  // blank lines are not counted as malformed
    if (line.substr(first, 9) == "{\"stats\":") {
      // A stats snapshot (stats.h): kept when it is the latest of its process; a bad one
      // is counted as malformed, like any unreadable line.
      if (auto st = parse_stats(line.substr(first), &stats_error)) {
        Snapshots& snaps = st->source == StatsSource::kHelper ? helper_stats : icap_stats;
        if (auto [it, added] = snaps.try_emplace(st->pid, *st); !added && it->second.ts <= st->ts)
          it->second = std::move(*st);
        return;
      }
    }
    Event ev;
    bool ok =
        line[first] == '{' ? parse_event(line, ev, bufs) : parse_access_line(line, ev, host_buf);
    if (!ok) {
      ++malformed;
      if (malformed_samples.size() < kMaxSamples) {
        std::string sample(line.substr(0, 120));
        for (char& c : sample)
          if (static_cast<unsigned char>(c) < 0x20) c = '?';
        malformed_samples.push_back(sample);
      }
      return;
    }
    count(ev);
  }
};

ReportBuilder::ReportBuilder(ReportOptions options) : s_(std::make_unique<State>()) {
  s_->opt = std::move(options);
}
ReportBuilder::~ReportBuilder() = default;

void ReportBuilder::add_line(std::string_view line) {
  s_->add_line(line);
}
std::uint64_t ReportBuilder::lines() const {
  return s_->lines;
}
std::uint64_t ReportBuilder::malformed() const {
  return s_->malformed;
}

bool ReportBuilder::add_file(const std::string& path, std::string* error) {
  gzFile gz = gzopen(path.c_str(), "rb");  // reads plain files transparently too
  if (gz == nullptr) {
    if (error) *error = path + ": cannot open: " + std::strerror(errno ? errno : ENOENT);
    return false;
  }
  gzbuffer(gz, 1 << 17);
  std::string& pending = s_->line_buf;
  pending.clear();
  bool skipping = false;  // inside an over-long line
  std::vector<char> buf(1 << 20);
  bool ok = true;
  for (;;) {
    int n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int errnum = 0;
      const char* msg = gzerror(gz, &errnum);
      if (error) *error = path + ": read error: " + (msg ? msg : "?");
      ok = false;
      break;
    }
    if (n == 0) break;
    std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
    while (!chunk.empty()) {
      std::size_t nl = chunk.find('\n');
      std::string_view part = chunk.substr(0, nl);
      if (skipping) {
        if (nl != std::string_view::npos) {
          skipping = false;
          ++s_->lines;
          ++s_->malformed;
        }
      } else if (pending.size() + part.size() > kMaxLine) {
        pending.clear();
        skipping = nl == std::string_view::npos;
        if (!skipping) {
          ++s_->lines;
          ++s_->malformed;
        }
      } else if (nl == std::string_view::npos) {
        pending.append(part);
      } else if (!pending.empty()) {
        pending.append(part);
        s_->add_line(pending);
        pending.clear();
      } else {
        s_->add_line(part);
      }
      if (nl == std::string_view::npos) break;
      chunk.remove_prefix(nl + 1);
    }
  }
  if (!pending.empty()) s_->add_line(pending);
  if (skipping) {
    ++s_->lines;
    ++s_->malformed;
  }
  gzclose(gz);
  return ok;
}

// ---- output ----

namespace {

// Rules of the policy never seen in the logs, and rules expiring within 30 days.
void policy_rows(const ReportOptions& opt, const Table<RuleCounts>& rules,
                 std::vector<const Rule*>& never_hit, std::vector<const Rule*>& expiring) {
  if (!opt.policy) return;
  for (const Rule& r : opt.policy->rules()) {
    const RuleCounts* rc = rules.find(r.id);
    if (rc == nullptr || rc->total() == 0) never_hit.push_back(&r);
    if (r.expires && *r.expires < opt.today + std::chrono::days(30)) expiring.push_back(&r);
  }
}

std::string owner_of(const ReportOptions& opt, const std::string& id, const RuleCounts& rc) {
  if (!rc.owner.empty()) return rc.owner;
  if (opt.policy) {
    if (const Rule* r = opt.policy->find_rule(id)) return r->owner;
  }
  return "";
}

std::string ticket_of(const ReportOptions& opt, const std::string& id, const RuleCounts& rc) {
  if (!rc.ticket.empty()) return rc.ticket;
  if (opt.policy) {
    if (const Rule* r = opt.policy->find_rule(id)) return r->ticket;
  }
  return "";
}

auto by_count = [](std::uint64_t v) { return v; };
auto by_total = [](const RuleCounts& r) { return r.total(); };

}  // namespace

std::string ReportBuilder::text() const {
  const State& s = *s_;
  const ReportOptions& o = s.opt;
  std::string out;
  out += "authbypass report: " + with_commas(s.lines) + " lines, " + with_commas(s.malformed) +
         " malformed";
  if (s.out_of_range) out += ", " + with_commas(s.out_of_range) + " outside --since/--until";
  out += "\n";
  out += s.first_ts < 0 ? std::string("time range: no events\n")
                        : "time range: " + format_time_ms(s.first_ts) + " .. " +
                              format_time_ms(s.last_ts) + "\n";
  out += "\nEvents\n";
  {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : s.events) rows.push_back({k, with_commas(v)});
    out += table({"component/event", "count"}, rows, {false, true});
  }
  out += "\nBypasses per rule (helper decisions, Squid %ea lines, ICAP verified/blocked, shadow)\n";
  {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [id, rc] : top(s.rules, 1000, by_total)) {
      rows.push_back({id, owner_of(o, id, rc), ticket_of(o, id, rc), with_commas(rc.helper_bypass),
                      with_commas(rc.squid_bypass), with_commas(rc.verified),
                      with_commas(rc.blocked), with_commas(rc.shadow)});
    }
    out += table({"rule", "owner", "ticket", "helper", "squid", "verified", "blocked", "shadow"},
                 rows, {false, false, false, true, true, true, true, true});
  }
  auto simple = [&](const char* title, const char* col, const Table<std::uint64_t>& t) {
    out += std::string("\n") + title + "\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : top(t, o.top, by_count)) rows.push_back({k, with_commas(v)});
    if (t.overflowed()) rows.push_back({"(other)", with_commas(t.other())});
    out += table({col, "events"}, rows, {false, true});
  };
  simple("Top clients (bypass, verified and blocked events)", "client", s.clients);
  simple("Top hosts", "host", s.hosts);
  simple("Blocked responses by reason (not revocation data)", "reason", s.blocked_reasons);
  simple("Hosts that served blocked responses", "host", s.blocked_hosts);
  simple("Shadow hits: what shadow rules would have let through", "rule host", s.shadow_hosts);

  std::vector<const Rule*> never_hit, expiring;
  policy_rows(o, s.rules, never_hit, expiring);
  if (o.policy) {
    out += "\nRules never hit in this period (candidates for removal)\n";
    std::vector<std::vector<std::string>> rows;
    for (const Rule* r : never_hit) rows.push_back({r->id, r->owner, r->ticket});
    out += table({"rule", "owner", "ticket"}, rows, {false, false, false});
    out += "\nRules expiring within 30 days (or expired)\n";
    rows.clear();
    for (const Rule* r : expiring) rows.push_back({r->id, format_date(*r->expires), r->owner});
    out += table({"rule", "expires", "owner"}, rows, {false, false, false});
  } else {
    out += "\n(give --policy POLICY for rules never hit, expiring rules and CA-host checks)\n";
  }

  auto counters = [&](const Snapshots& snaps, StatsSource source, std::string_view title) {
    if (snaps.empty()) return;
    out += "\n" + std::string(title) + " (" + std::to_string(snaps.size()) +
           " process(es), latest snapshot each, summed)\n";
    const StatsTotals t = sum_stats(snaps, source);
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : t.counters) rows.push_back({std::string(k), with_commas(v)});
    out += table({"counter", "value"}, rows, {false, true});
    if (source != StatsSource::kHelper) return;
    rows.clear();
    for (const auto& [id, h] : t.rules)
      rows.push_back({id, with_commas(h.bypass), with_commas(h.shadow)});
    out += table({"rule", "bypass", "shadow"}, rows, {false, true, true});
  };
  counters(s.helper_stats, StatsSource::kHelper, "Helper counters");
  counters(s.icap_stats, StatsSource::kIcap, "ICAP counters");

  out += "\nAnomalies\n";
  simple("  CryptoAPI / Sign-In Assistant user agents to hosts outside every CA rule", "host",
         s.ua_off_ca_hosts);
  out += "\n  Bursts: more than " + std::to_string(o.burst_per_minute) +
         " bypass events from one client within a minute\n";
  {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [client, minute, n] : s.bursts) {
      if (rows.size() >= o.top) break;
      rows.push_back({client, format_time_ms(minute * 60'000).substr(0, 16) + "Z", with_commas(n)});
    }
    out += table({"client", "minute", "events"}, rows, {false, false, true});
  }
  if (o.hours) {
    out += "\n  Outside working hours " + std::to_string(o.hours->first) + ":00-" +
           std::to_string(o.hours->second) + ":00 (local time): " + with_commas(s.off_hours) +
           " events\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : top(s.off_hours_clients, o.top, by_count))
      rows.push_back({k, with_commas(v)});
    out += table({"client", "events"}, rows, {false, true});
  }
  if (s.malformed) {
    out += "\nMalformed lines (first " + std::to_string(s.malformed_samples.size()) + ")\n";
    for (const std::string& m : s.malformed_samples) out += "  " + m + "\n";
  }
  return out;
}

std::string ReportBuilder::json() const {
  const State& s = *s_;
  const ReportOptions& o = s.opt;
  std::string out = "{";
  auto str = [&](std::string_view v) { append_json_string(out, v); };
  auto key = [&](std::string_view k) {
    if (out.back() != '{' && out.back() != '[') out += ',';
    str(k);
    out += ':';
  };
  key("lines");
  out += std::to_string(s.lines);
  key("malformed");
  out += std::to_string(s.malformed);
  key("outside_range");
  out += std::to_string(s.out_of_range);
  key("first");
  if (s.first_ts < 0) {
    out += "null";
  } else {
    str(format_time_ms(s.first_ts));
  }
  key("last");
  if (s.last_ts < 0) {
    out += "null";
  } else {
    str(format_time_ms(s.last_ts));
  }
  key("events");
  out += '{';
  for (const auto& [k, v] : s.events) {
    key(k);
    out += std::to_string(v);
  }
  out += '}';
  key("rules");
  out += '[';
  for (const auto& [id, rc] : top(s.rules, 100000, by_total)) {
    if (out.back() != '[') out += ',';
    out += '{';
    key("rule");
    str(id);
    key("owner");
    str(owner_of(o, id, rc));
    key("ticket");
    str(ticket_of(o, id, rc));
    for (auto [name, v] : {std::pair{"helper", rc.helper_bypass},
                           std::pair{"squid", rc.squid_bypass}, std::pair{"verified", rc.verified},
                           std::pair{"blocked", rc.blocked}, std::pair{"shadow", rc.shadow}}) {
      key(name);
      out += std::to_string(v);
    }
    out += '}';
  }
  out += ']';
  auto simple = [&](std::string_view name, const Table<std::uint64_t>& t, std::size_t n) {
    key(name);
    out += '{';
    for (const auto& [k, v] : top(t, n, by_count)) {
      key(k);
      out += std::to_string(v);
    }
    if (t.overflowed()) {
      key("(other)");
      out += std::to_string(t.other());
    }
    out += '}';
  };
  simple("clients", s.clients, o.top);
  simple("hosts", s.hosts, o.top);
  simple("blocked_reasons", s.blocked_reasons, 1000);
  simple("blocked_hosts", s.blocked_hosts, o.top);
  simple("shadow_hits", s.shadow_hosts, o.top);
  simple("ua_outside_ca_rules", s.ua_off_ca_hosts, o.top);
  std::vector<const Rule*> never_hit, expiring;
  policy_rows(o, s.rules, never_hit, expiring);
  key("never_hit");
  if (o.policy) {
    out += '[';
    for (const Rule* r : never_hit) {
      if (out.back() != '[') out += ',';
      str(r->id);
    }
    out += ']';
  } else {
    out += "null";
  }
  key("expiring");
  if (o.policy) {
    out += '{';
    for (const Rule* r : expiring) {
      key(r->id);
      str(format_date(*r->expires));
    }
    out += '}';
  } else {
    out += "null";
  }
  key("bursts");
  out += '[';
  for (const auto& [client, minute, n] : s.bursts) {
    if (out.back() != '[') out += ',';
    out += '{';
    key("client");
    str(client);
    key("minute");
    str(format_time_ms(minute * 60'000));
    key("events");
    out += std::to_string(n);
    out += '}';
  }
  out += ']';
  if (o.hours) {
    key("outside_hours");
    out += std::to_string(s.off_hours);
    simple("outside_hours_clients", s.off_hours_clients, o.top);
  }
  auto counter_fields = [&](const std::vector<std::pair<std::string_view, std::uint64_t>>& c) {
    for (const auto& [k, v] : c) {
      key(k);
      out += std::to_string(v);
    }
  };
  auto rule_hits = [&](const std::map<std::string, RuleHits, std::less<>>& rules) {
    key("rules");
    out += '{';
    for (const auto& [id, h] : rules) {
      key(id);
      out += "{\"bypass\":" + std::to_string(h.bypass) + ",\"shadow\":" + std::to_string(h.shadow) +
             "}";
    }
    out += '}';
  };
  // Per process ("helper_stats", "icap_stats") and summed ("helper_totals", "icap_totals").
  for (const StatsSource source : {StatsSource::kHelper, StatsSource::kIcap}) {
    const bool helper = source == StatsSource::kHelper;
    const Snapshots& snaps = helper ? s.helper_stats : s.icap_stats;
    key(helper ? "helper_stats" : "icap_stats");
    out += '[';
    for (const auto& [pid, st] : snaps) {
      out += out.back() == '[' ? "{" : ",{";
      key("pid");
      out += std::to_string(pid);
      key("ts");
      str(format_time_ms(
          std::chrono::duration_cast<std::chrono::milliseconds>(st.ts.time_since_epoch()).count()));
      key("policy_sha256");
      str(st.policy_sha256);
      const auto values = counter_values(st, source);
      for (std::size_t i = 0; i < values.size(); ++i) {
        key(counter_key_at(source, i));
        out += std::to_string(values[i]);
      }
      if (helper) rule_hits(st.rules);
      out += '}';
    }
    out += ']';
    const StatsTotals t = sum_stats(snaps, source);
    key(helper ? "helper_totals" : "icap_totals");
    out += '{';
    key("processes");
    out += std::to_string(snaps.size());
    counter_fields(t.counters);
    if (helper) rule_hits(t.rules);
    out += '}';
  }
  out += "}\n";
  return out;
}

std::string ReportBuilder::csv() const {
  const State& s = *s_;
  const ReportOptions& o = s.opt;
  std::string out = "section,key,count,owner,ticket,helper,squid,verified,blocked,shadow\n";
  auto row = [&](std::string_view section, std::string_view k, std::uint64_t n) {
    out += csv_cell(section) + "," + csv_cell(k) + "," + std::to_string(n) + "\n";
  };
  row("summary", "lines", s.lines);
  row("summary", "malformed", s.malformed);
  row("summary", "outside_range", s.out_of_range);
  if (s.first_ts >= 0) {
    out += "summary,first," + format_time_ms(s.first_ts) + "\n";
    out += "summary,last," + format_time_ms(s.last_ts) + "\n";
  }
  for (const auto& [k, v] : s.events) row("event", k, v);
  for (const auto& [id, rc] : top(s.rules, 100000, by_total)) {
    out += "rule," + csv_cell(id) + "," + std::to_string(rc.total()) + "," +
           csv_cell(owner_of(o, id, rc)) + "," + csv_cell(ticket_of(o, id, rc)) + "," +
           std::to_string(rc.helper_bypass) + "," + std::to_string(rc.squid_bypass) + "," +
           std::to_string(rc.verified) + "," + std::to_string(rc.blocked) + "," +
           std::to_string(rc.shadow) + "\n";
  }
  auto simple = [&](std::string_view section, const Table<std::uint64_t>& t, std::size_t n) {
    for (const auto& [k, v] : top(t, n, by_count)) row(section, k, v);
  };
  simple("client", s.clients, o.top);
  simple("host", s.hosts, o.top);
  simple("blocked_reason", s.blocked_reasons, 1000);
  simple("shadow_hit", s.shadow_hosts, o.top);
  simple("ua_outside_ca_rules", s.ua_off_ca_hosts, o.top);
  std::vector<const Rule*> never_hit, expiring;
  policy_rows(o, s.rules, never_hit, expiring);
  for (const Rule* r : never_hit) row("never_hit", r->id, 0);
  for (const Rule* r : expiring)
    out += "expiring," + csv_cell(r->id) + "," + format_date(*r->expires) + "\n";
  for (const auto& [client, minute, n] : s.bursts)
    out += "burst," + csv_cell(client + " " + format_time_ms(minute * 60'000)) + "," +
           std::to_string(n) + "\n";
  if (o.hours) row("outside_hours", "total", s.off_hours);
  return out;
}

}  // namespace authbypass
