#include "authbypass/stats.h"

#include <unistd.h>

#include <algorithm>
#include <bitset>
#include <climits>
#include <cstdio>
#include <ctime>
#include <set>
#include <span>

#include "authbypass/audit.h"
#include "authbypass/output_file.h"
#include "json_scanner.h"
#include "text.h"

namespace authbypass {

namespace {

constexpr std::string_view kHelperKeys[] = {
#define AUTHBYPASS_X(name, key) key,
    AUTHBYPASS_HELPER_COUNTERS(AUTHBYPASS_X)
#undef AUTHBYPASS_X
};
constexpr std::string_view kIcapKeys[] = {
#define AUTHBYPASS_X(name, label, key) key,
    AUTHBYPASS_ICAP_COUNTERS(AUTHBYPASS_X)
#undef AUTHBYPASS_X
};
constexpr std::string_view kIcapLabels[] = {
#define AUTHBYPASS_X(name, label, key) label,
    AUTHBYPASS_ICAP_COUNTERS(AUTHBYPASS_X)
#undef AUTHBYPASS_X
};

// The counter keys of an adapter and where its values go.
std::span<const std::string_view> keys_of(StatsSource s) {
  return s == StatsSource::kHelper ? std::span<const std::string_view>(kHelperKeys)
                                   : std::span<const std::string_view>(kIcapKeys);
}
std::span<std::uint64_t> values_of(StatsSnapshot& s) {
  return s.source == StatsSource::kHelper ? std::span<std::uint64_t>(s.helper)
                                          : std::span<std::uint64_t>(s.icap);
}

// "2026-12-01T20:03:46.683Z" (UTC, milliseconds).
std::string format_ts(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t.time_since_epoch()).count();
  const auto secs = static_cast<std::time_t>(floor<seconds>(t.time_since_epoch()).count());
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms - secs * 1000LL));
  return buf;
}

// Exactly the shape format_ts() makes.
std::optional<std::chrono::system_clock::time_point> parse_ts(std::string_view v) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (v.size() != kShape.size()) return std::nullopt;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (kShape[i] == 'd' ? !text::is_digit(v[i]) : v[i] != kShape[i]) return std::nullopt;
  }
  auto num = [v](std::size_t at, std::size_t n) {
    int x = 0;
    for (std::size_t k = at; k < at + n; ++k) x = x * 10 + (v[k] - '0');
    return x;
  };
  // Years a system_clock time point holds (nanoseconds: about 1678 to 2262) and then some.
  if (num(0, 4) < 1970 || num(0, 4) > 2200) return std::nullopt;
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  const auto t =
      std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(num(20, 3));
  // No date that timegm() would carry over (Feb 30, second 60): the time must be
  // written back exactly as it was read.
  if (format_ts(t) != v) return std::nullopt;
  return t;
}

// Reads one snapshot; the first failure is kept in `error`.
class StatsParser {
 public:
  explicit StatsParser(std::string_view line) : j_(line) {}

  std::optional<StatsSnapshot> parse() {
    std::string_view key, marker;
    if (!j_.eat('{') || !j_.string(key, kb_) || key != "stats" || !j_.eat(':') ||
        !j_.string(marker, vb_))
      return fail("not a stats snapshot (\"stats\" must be the first key)");
    if (marker == stats_marker(StatsSource::kHelper)) {
      s_.source = StatsSource::kHelper;
    } else if (marker == stats_marker(StatsSource::kIcap)) {
      s_.source = StatsSource::kIcap;
    } else {
      return fail("unknown stats marker");
    }
    while (j_.eat(',')) {
      if (!j_.string(key, kb_) || !j_.eat(':')) return fail("expected \"key\":");
      const std::string k(key);
      if (!field(k)) return std::nullopt;
    }
    if (!j_.eat('}') || !j_.at_end()) return fail("expected the end of the object");
    if (!seen_[kPid] || !seen_[kTs]) return fail("pid or ts missing");
    return std::move(s_);
  }

  const std::string& error() const { return error_; }

 private:
  enum Fixed : std::size_t { kPid, kTs, kSha, kFile, kRules, kFixed };

  // Keeps the first error; false.
  bool bad(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  std::nullopt_t fail(std::string why) {
    bad(std::move(why));
    return std::nullopt;
  }

  bool once(std::size_t slot, const std::string& key) {
    if (seen_[slot]) return bad("repeated key " + key);
    seen_[slot] = true;
    return true;
  }

  bool string(std::string& out, const std::string& key) {
    std::string_view v;
    if (!j_.string(v, vb_)) return bad(key + " is not a string");
    if (v.size() > kMaxStatsString) return bad(key + " is too long");
    if (!text::valid_utf8(v)) return bad(key + " is not UTF-8");  // would not read back
    out.assign(v);
    return true;
  }

  bool count(std::uint64_t& out, const std::string& key) {
    if (!j_.unsigned_integer(out)) return bad(key + " is not an unsigned integer");
    return true;
  }

  bool field(const std::string& k) {
    if (k == "pid") {
      std::uint64_t pid = 0;
      if (!once(kPid, k) || !count(pid, k)) return false;
      if (pid == 0 || pid > INT_MAX) return bad("pid out of range");
      s_.pid = static_cast<std::int64_t>(pid);
      return true;
    }
    if (k == "ts") {
      std::string v;
      if (!once(kTs, k) || !string(v, k)) return false;
      auto t = parse_ts(v);
      if (!t) return bad("ts is not YYYY-MM-DDTHH:MM:SS.mmmZ");
      s_.ts = *t;
      return true;
    }
    if (k == "policy_sha256") return once(kSha, k) && string(s_.policy_sha256, k);
    if (k == "policy_file") return once(kFile, k) && string(s_.policy_file, k);
    if (k == "rules") return once(kRules, k) && rules();
    const auto keys = keys_of(s_.source);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == k) return once(kFixed + i, k) && count(values_of(s_)[i], k);
    }
    return unknown(k);
  }

  // A key of a later release: a number or a string, skipped.
  bool unknown(const std::string& k) {
    std::string ignored;
    std::uint64_t n = 0;
    return j_.peek('"') ? string(ignored, k) : count(n, k);
  }

  bool rules() {
    if (!j_.eat('{')) return bad("rules is not an object");
    if (j_.eat('}')) return true;
    do {
      std::string id;
      if (!string(id, "a rule id") || id.empty() || !j_.eat(':') || !j_.eat('{'))
        return bad("rules: expected \"id\":{");
      if (s_.rules.size() >= kMaxStatsRules) return bad("too many rules");
      auto [it, added] = s_.rules.try_emplace(std::move(id));
      if (!added) return bad("rules: repeated rule id");
      if (!hits(it->second)) return false;
    } while (j_.eat(','));
    return j_.eat('}') || bad("rules: expected }");
  }

  bool hits(RuleHits& h) {
    bool seen[2] = {false, false};
    if (j_.eat('}')) return true;
    do {
      std::string_view key;
      if (!j_.string(key, kb_) || !j_.eat(':')) return bad("rules: expected \"key\":");
      const std::string k(key);
      const int slot = k == "bypass" ? 0 : k == "shadow" ? 1 : -1;
      if (slot < 0) {
        if (!unknown(k)) return false;
        continue;
      }
      if (seen[slot]) return bad("rules: repeated " + k);
      seen[slot] = true;
      if (!count(slot == 0 ? h.bypass : h.shadow, k)) return false;
    } while (j_.eat(','));
    return j_.eat('}') || bad("rules: expected }");
  }

  JsonScanner j_;
  std::string kb_, vb_, error_;
  StatsSnapshot s_;
  std::bitset<kFixed + kHelperCounterCount + icap::kCounterCount> seen_;
};

}  // namespace

namespace icap {

std::string_view counter_label(Counter c) {
  return kIcapLabels[static_cast<std::size_t>(c)];
}

}  // namespace icap

std::string_view stats_marker(StatsSource s) {
  return s == StatsSource::kHelper ? "ext_authbypass_acl" : "srv_authbypass";
}

std::string_view counter_key(HelperCounter c) {
  return kHelperKeys[static_cast<std::size_t>(c)];
}

std::string_view counter_key(icap::Counter c) {
  return kIcapKeys[static_cast<std::size_t>(c)];
}

std::string format_stats(const StatsSnapshot& s) {
  std::string j = "{\"stats\":";
  append_json_string(j, stats_marker(s.source));
  j += ",\"pid\":" + std::to_string(s.pid);
  j += ",\"ts\":\"" + format_ts(s.ts) + '"';
  j += ",\"policy_sha256\":";
  append_json_string(j, s.policy_sha256);
  j += ",\"policy_file\":";
  append_json_string(j, s.policy_file);
  const auto keys = keys_of(s.source);
  const std::span<const std::uint64_t> values = s.source == StatsSource::kHelper
                                                    ? std::span<const std::uint64_t>(s.helper)
                                                    : std::span<const std::uint64_t>(s.icap);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    j += ",\"";
    j += keys[i];
    j += "\":" + std::to_string(values[i]);
  }
  j += ",\"rules\":{";
  bool first = true;
  for (const auto& [id, h] : s.rules) {
    if (!first) j += ',';
    first = false;
    append_json_string(j, id);
    j += ":{\"bypass\":" + std::to_string(h.bypass) + ",\"shadow\":" + std::to_string(h.shadow) +
         "}";
  }
  j += "}}\n";
  return j;
}

std::optional<StatsSnapshot> parse_stats(std::string_view line, std::string* error) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.size() > kMaxStatsLine) {
    if (error) *error = "stats line too long";
    return std::nullopt;
  }
  StatsParser p(line);
  auto s = p.parse();
  if (!s && error) *error = p.error();
  return s;
}

bool write_stats_file(std::string_view pattern, const StatsSnapshot& s, std::string* error) {
  std::string path(pattern);
  if (auto at = path.find("%p"); at != std::string::npos)
    path.replace(at, 2, std::to_string(s.pid));
  OutputFileOptions o;
  o.create_mode = 0640;
  o.durable = false;  // rewritten every second: no fsync on the answering thread
  auto r = write_output_file(path, format_stats(s), o);
  if (!r && error) *error = r.message;
  return static_cast<bool>(r);
}

std::chrono::milliseconds StatsFileWriter::due_in(Clock::time_point now) const {
  if (!written_) return std::chrono::milliseconds(0);
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(last_ + kInterval - now);
  return std::max(left, std::chrono::milliseconds(0));
}

bool StatsFileWriter::due(bool changed, bool force, Clock::time_point now) const {
  if (!enabled()) return false;
  return force || (changed && (!written_ || now - last_ >= kInterval));
}

StatsSnapshot StatsFileWriter::header(StatsSource source, std::string_view policy_sha256,
                                      std::string_view policy_file) {
  StatsSnapshot st;
  st.source = source;
  st.pid = ::getpid();
  st.ts = std::chrono::system_clock::now();
  st.policy_sha256 = policy_sha256;
  st.policy_file = policy_file;
  return st;
}

std::optional<std::string> StatsFileWriter::write(const StatsSnapshot& s, Clock::time_point now) {
  last_ = now;
  written_ = true;
  std::string err;
  if (write_stats_file(pattern_, s, &err)) {
    failing_ = false;
    return std::nullopt;
  }
  const bool report = !failing_;
  failing_ = true;
  if (!report) return std::nullopt;
  return "cannot write the stats file: " + err;
}

}  // namespace authbypass
