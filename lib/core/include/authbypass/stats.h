// The statistics of the adapters (docs/audit-and-siem.md "Counters"): one typed snapshot
// per process, written by the Squid helper (--stats-file) and the c-icap service
// (authbypass.StatsFile), read back by `authbypass report`. The counters are declared
// once, here, in X-macro lists; the file format is made by format_stats() and read by
// parse_stats(), nowhere else.
//
// The file: one JSON object on one line (LF-terminated), keys in this order:
//   {"stats":"ext_authbypass_acl"|"srv_authbypass","pid":N,"ts":"2026-12-01T20:03:46.683Z",
//    "policy_sha256":"...","policy_file":"...",<the adapter's counters, in list order>,
//    "rules":{"<id>":{"bypass":N,"shadow":N},...}}
// Counters are unsigned decimal integers. The helper's files of earlier releases have
// this exact shape.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace authbypass {

// The helper's counters: name and JSON key.
#define AUTHBYPASS_HELPER_COUNTERS(X)                                                   \
  X(kLines, "lines") /* every answered line: the sum of the next five */                \
  X(kBypass, "bypass")                                                                  \
  X(kAuthenticate, "authenticate")                                                      \
  X(kBadLines, "bad_lines")                   /* not a helper line */                   \
  X(kMalformedRequests, "malformed_requests") /* a line whose request does not parse */ \
  X(kInternalErrors, "internal_errors")                                                 \
  X(kReloads, "reloads")                    /* policies loaded */                       \
  X(kReloadsRejected, "reloads_rejected")   /* policy files that failed to load */      \
  X(kRegexFaults, "regex_faults")           /* of the policy in force */                \
  X(kAuditErrors, "audit_errors")           /* failed audit log writes */               \
  X(kRefusedUnaudited, "refused_unaudited") /* bypasses answered ERR: not on record */

enum class HelperCounter : std::uint8_t {
#define AUTHBYPASS_X(name, key) name,
  AUTHBYPASS_HELPER_COUNTERS(AUTHBYPASS_X)
#undef AUTHBYPASS_X
};
inline constexpr std::size_t kHelperCounterCount = 0
#define AUTHBYPASS_X(name, key) +1
    AUTHBYPASS_HELPER_COUNTERS(AUTHBYPASS_X)
#undef AUTHBYPASS_X
    ;

namespace icap {

// The ICAP service's counters: name, label (c-icap's `info` service, group "Service
// authbypass", statistic "authbypass " + label) and JSON key. One per audited transaction
// outcome (counter_of() in icap_transaction.h).
#define AUTHBYPASS_ICAP_COUNTERS(X)                                            \
  X(kVerifiedCrl, "verified crl", "verified_crl")                              \
  X(kVerifiedOcsp, "verified ocsp", "verified_ocsp")                           \
  X(kVerifiedCert, "verified cert", "verified_cert")                           \
  X(kVerifiedPkcs7, "verified pkcs7", "verified_pkcs7")                        \
  X(kVerifiedCtl, "verified ctl", "verified_ctl")                              \
  X(kVerifiedOcspRequest, "verified ocsp-request", "verified_ocsp_request")    \
  X(kUnchecked, "bypassed unchecked (verify none)", "unchecked")               \
  X(kBlocked, "blocked", "blocked")                                            \
  X(kMarked, "decided bypass (marked)", "marked")          /* decision mode */ \
  X(kForged, "forged mark removed", "forged_mark_removed") /* decision mode */

enum class Counter : std::uint8_t {
#define AUTHBYPASS_X(name, label, key) name,
  AUTHBYPASS_ICAP_COUNTERS(AUTHBYPASS_X)
#undef AUTHBYPASS_X
};
inline constexpr std::size_t kCounterCount = 0
#define AUTHBYPASS_X(name, label, key) +1
    AUTHBYPASS_ICAP_COUNTERS(AUTHBYPASS_X)
#undef AUTHBYPASS_X
    ;

// "verified crl", ... (the c-icap statistic is "authbypass " + this label).
std::string_view counter_label(Counter c);

}  // namespace icap

// Which adapter wrote a snapshot, and the "stats" marker of its file.
enum class StatsSource : std::uint8_t {
  kHelper,  // "ext_authbypass_acl"
  kIcap,    // "srv_authbypass"
};
std::string_view stats_marker(StatsSource s);

// The JSON key of a counter.
std::string_view counter_key(HelperCounter c);
std::string_view counter_key(icap::Counter c);

struct RuleHits {
  std::uint64_t bypass = 0;  // answered as a bypass under the rule
  std::uint64_t shadow = 0;  // matched the rule in shadow mode
};

// One process's counters since it started, at one moment.
struct StatsSnapshot {
  StatsSource source = StatsSource::kHelper;
  std::int64_t pid = 0;
  std::chrono::system_clock::time_point ts{};  // written with millisecond precision
  std::string policy_sha256;                   // of the policy in force; "" when none
  std::string policy_file;
  // The counters of `source` (the other adapter's stay zero and are not written).
  std::array<std::uint64_t, kHelperCounterCount> helper{};
  std::array<std::uint64_t, icap::kCounterCount> icap{};
  std::map<std::string, RuleHits, std::less<>> rules;  // by rule id (helper only)

  std::uint64_t& operator[](HelperCounter c) { return helper[static_cast<std::size_t>(c)]; }
  std::uint64_t& operator[](icap::Counter c) { return icap[static_cast<std::size_t>(c)]; }
  std::uint64_t operator[](HelperCounter c) const { return helper[static_cast<std::size_t>(c)]; }
  std::uint64_t operator[](icap::Counter c) const { return icap[static_cast<std::size_t>(c)]; }
};

// Bounds of what parse_stats() accepts (larger is an error, never a big allocation).
inline constexpr std::size_t kMaxStatsLine = 16 * 1024 * 1024;
inline constexpr std::size_t kMaxStatsRules = 100'000;
inline constexpr std::size_t kMaxStatsString = 4096;  // a rule id, a path, a hash

// The snapshot as one JSON line (LF-terminated), in the format above. Strings are escaped
// per RFC 8259 (append_json_string).
std::string format_stats(const StatsSnapshot& s);

// Reads one line made by format_stats() (a trailing LF/CR is allowed). nullopt and *error
// (when given) for anything else: not one JSON object, "stats" not the first key or an
// unknown marker, a counter that is not an unsigned integer (or overflows 64 bits), a
// string field that is not a string (or not UTF-8), a "ts" that is not YYYY-MM-DDTHH:MM:SS.mmmZ, a
// missing pid or ts, a repeated key, or past the bounds above. Keys it does not know
// (a counter of a later release) are skipped when their value is a number or a string.
std::optional<StatsSnapshot> parse_stats(std::string_view line, std::string* error = nullptr);

// Writes `s` (format_stats) to `pattern` with "%p" replaced by s.pid, atomically (a
// reader sees the old snapshot or the new one: write_output_file, not flushed to disk,
// mode 0640 when created). False and *error on failure.
bool write_stats_file(std::string_view pattern, const StatsSnapshot& s, std::string* error);

// A process's stats file as both adapters keep it: the snapshot's header, at most one
// write per kInterval unless forced, and which failed writes are reported. Not
// thread-safe: the caller serialises.
class StatsFileWriter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kInterval{1};

  // `pattern`: the file ("%p" stands for the PID); empty: none, and no write is ever due.
  explicit StatsFileWriter(std::string pattern = {}) : pattern_(std::move(pattern)) {}

  bool enabled() const { return !pattern_.empty(); }
  // A write was made (whether or not it succeeded).
  bool written() const { return written_; }

  // How long from `now` until a changed snapshot may be written (zero: now; the first
  // write is due at once).
  std::chrono::milliseconds due_in(Clock::time_point now) const;
  // Whether to write at `now`: enabled, and `force`, or `changed` and no write within
  // kInterval before `now`.
  bool due(bool changed, bool force, Clock::time_point now) const;

  // A snapshot of `source` for this process (pid) at this moment (ts), naming the policy
  // in force; its counters are zero.
  static StatsSnapshot header(StatsSource source, std::string_view policy_sha256,
                              std::string_view policy_file);

  // Writes `s` (write_stats_file) as the write made at `now`. When it fails, the message
  // to report if it is to be reported: the first failure, and the first failure after a
  // successful write; nullopt otherwise (a success, or a failure following a failure).
  std::optional<std::string> write(const StatsSnapshot& s, Clock::time_point now);

 private:
  std::string pattern_;
  Clock::time_point last_{};
  bool written_ = false;
  bool failing_ = false;
};

}  // namespace authbypass
