// Audit events (docs/architecture.md "Audit events"): one JSON object per line, and the sinks that
// write them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace authbypass {

struct Rule;

// One audit event. Empty strings and negative numbers are left out of the JSON line.
struct AuditEvent {
  std::string_view component;  // "helper" | "icap"
  std::string_view event;  // bypass | shadow | verified | blocked | policy_loaded | policy_rejected
  std::string_view rule;
  std::string_view owner;
  std::string_view ticket;
  std::string_view policy_sha256;
  std::string_view src;
  std::string_view method;
  std::string_view url;
  std::string_view host;
  std::string_view user_agent;
  int status = -1;  // ICAP: HTTP status of the response
  std::string_view content_type;
  std::int64_t bytes = -1;
  std::string_view verdict;
  std::string_view reason;
  std::string_view file;  // policy events: the policy file
  // When set: the JSON of component, event, rule, owner, ticket and policy_sha256 exactly
  // as audit_fixed_fields() made it for this event (those fields are then not read). Lets
  // a writer of many events of one rule escape them once.
  std::string_view fixed_json;
  // When set: the JSON of src, method, url, host and user_agent exactly as
  // append_audit_request_fields() made it (those fields are then not read). Lets a writer
  // of several events of one request escape them once.
  std::string_view request_json;
};

// The request an event is about (the engine's view of it, as audited).
struct AuditRequest {
  std::string_view src, method, url, host, user_agent;
};

// The one builder of rule events: `event` of `component` for `req`, naming `rule` (its id,
// owner and ticket; none when null) under the policy whose hash is `policy_sha256`. The
// event points into its arguments.
AuditEvent rule_event(std::string_view component, std::string_view event, const Rule* rule,
                      std::string_view policy_sha256, const AuditRequest& req);

// What an ICAP transaction's outcome event records beyond its request: the rule as audited
// (its id alone when this policy does not have the rule a mark named), the response's
// status, the checked body's Content-Type and size, the verdict and the reason.
struct AuditOutcome {
  std::string_view rule, owner, ticket;
  int status = -1;
  std::string_view content_type;
  std::int64_t bytes = -1;
  std::string_view verdict, reason;
};

// The one builder of ICAP outcome events: `event` of component "icap" for `req`, under
// the policy whose hash is `policy_sha256`, with the outcome `o`. The event points into
// its arguments.
AuditEvent icap_event(std::string_view event, std::string_view policy_sha256,
                      const AuditRequest& req, const AuditOutcome& o);

// The one builder of policy events: `policy_loaded` (when `loaded`) or `policy_rejected`
// of `component` for the policy file `file`. `policy_sha256` names the policy in force
// afterwards ("" when there is none). A rejection's reason is its `errors` joined by "; ",
// kept in `reason_buf`. The event points into its arguments.
AuditEvent policy_event(std::string_view component, bool loaded, std::string_view file,
                        std::string_view policy_sha256, std::span<const std::string> errors,
                        std::string& reason_buf);

// Appends the JSON text of `e`'s src, method, url, host and user_agent fields to `out`,
// for AuditEvent::request_json.
void append_audit_request_fields(std::string& out, const AuditEvent& e);

// The JSON text of `e`'s component, event, rule, owner, ticket and policy_sha256 fields,
// for AuditEvent::fixed_json.
std::string audit_fixed_fields(const AuditEvent& e);

// Appends `e` as one JSON line (with LF) to `out`, stamped `ts` (RFC 3339 UTC, ms). Every
// string is escaped per RFC 8259; control bytes, U+2028/2029 and invalid UTF-8 (as
// U+FFFD) never reach the line raw, so no client-sent byte can split or forge it.
void append_audit_json(std::string& out, const AuditEvent& e,
                       std::chrono::system_clock::time_point ts);

// The "ts" text of an audit line for `ts`: RFC 3339 UTC with milliseconds
// ("2026-01-31T12:34:56.789Z"), exactly as append_audit_json() stamps its lines.
std::string audit_timestamp(std::chrono::system_clock::time_point ts);

// Appends `s` as a JSON string literal (with quotes), escaped as above.
void append_json_string(std::string& out, std::string_view s);

// Writes all of `data` to `fd` (again after short writes and EINTR). False on an error
// (errno says which).
bool write_all(int fd, std::string_view data);

// The syslog(3) facility for a name: auth, authpriv, daemon, user, local0 ... local7.
// nullopt for any other name.
std::optional<int> syslog_facility(std::string_view name);

// Where audit lines go: a file (O_APPEND; reopen() after logrotate) and/or syslog
// (LOG_AUTHPRIV, one message per line). Not thread-safe; one per process or thread.
class AuditLog {
 public:
  AuditLog() = default;
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Opens (creating, mode 0640) `path`; false and *error on failure. The path is kept for
  // reopen(), which retries a failed open too.
  bool open_file(const std::string& path, std::string* error);
  // Also sends each line to syslog with this ident, at level info of `facility`
  // (LOG_AUTHPRIV by default; see syslog_facility()).
  void enable_syslog(const char* ident, int facility = -1);
  // Closes and opens the file again (after logrotate moved it). False and *error on failure.
  bool reopen(std::string* error);

  bool enabled() const { return !path_.empty() || syslog_; }

  // Writes complete lines (each ending in LF) with as few system calls as possible.
  // False if the file write failed (the caller reports it; lines are not retried).
  bool write(std::string_view lines);

 private:
  std::string path_;
  int fd_ = -1;
  bool syslog_ = false;
};

}  // namespace authbypass
