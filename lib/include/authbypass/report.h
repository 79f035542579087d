// `authbypass report`: the auditors' view of the audit trail (docs/architecture.md "CLI"). Reads
// helper and ICAP audit logs (JSON lines, plain or gzip) and Squid access logs carrying %ea, in one
// streaming pass with bounded memory, and summarizes who went through the proxy without
// credentials, to where, under which rule, and whether only revocation data passed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "authbypass/policy.h"

namespace authbypass {

struct ReportOptions {
  std::optional<std::int64_t> since_ms;      // events before are skipped (epoch ms, UTC)
  std::optional<std::int64_t> until_ms;      // events at or after are skipped
  std::optional<std::pair<int, int>> hours;  // working hours [from, to) in local time
  int burst_per_minute = 120;  // bypasses from one client in one minute that count as a burst
  std::size_t top = 20;        // rows per table
  std::shared_ptr<const Policy> policy;  // for never-hit / expiring / anomaly checks
  Date today{};                          // for "expiring in 30 days"
};

// Parses an RFC 3339 UTC time ("2026-12-01T19:37:09.267Z", fraction optional, 'Z' or
// +hh:mm offset) or a date ("2026-12-01", midnight UTC). nullopt if not such a time.
std::optional<std::int64_t> parse_time_ms(std::string_view s);

// Streams log lines into counters. Feed every line of every file (in any order); then
// ask for the summary. Memory is bounded: tables keep at most kMaxKeys distinct keys each
// (later new keys are counted under "(other)").
class ReportBuilder {
 public:
  static constexpr std::size_t kMaxKeys = 100'000;

  explicit ReportBuilder(ReportOptions options);
  ~ReportBuilder();
  ReportBuilder(const ReportBuilder&) = delete;
  ReportBuilder& operator=(const ReportBuilder&) = delete;

  // One log line, without its LF. Never throws; a line that is neither an audit event nor
  // a Squid access-log line with ea= is counted as malformed.
  void add_line(std::string_view line);
  // Reads a whole file (gzip if it starts with the gzip magic). False and *error if it
  // cannot be read; lines read so far stay counted.
  bool add_file(const std::string& path, std::string* error);

  // The summary as text (aligned tables), JSON (one object) or CSV (section,key,... rows).
  std::string text() const;
  std::string json() const;
  std::string csv() const;

  std::uint64_t lines() const;
  std::uint64_t malformed() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace authbypass
