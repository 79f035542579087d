// Audit batches: the audit events of many decisions, recorded on the request path at the
// cost of a copy, and turned into JSON lines (audit.h) later, possibly on another thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/decision.h"
#include "authbypass/policy.h"

namespace authbypass {

// The JSON of the fixed fields (component, event, rule, owner, ticket, policy_sha256) of
// each rule's bypass and shadow events for one policy, made once per rule and kept. A
// table stays unchanged while it lives, so records that point into it stay valid; a new
// policy gets a new table. Not thread-safe: one per thread that records events.
class RuleEventJson {
 public:
  using Table = std::shared_ptr<const std::vector<std::string>>;

  explicit RuleEventJson(std::string_view component) : component_(component) {}

  // The fixed fields of `r`'s bypass (or, when `shadow`, shadow) event under `policy`.
  const std::string* get(const Policy& policy, const Rule& r, bool shadow) {
    if (strings_ && generation_ == policy.generation()) {
      const std::string& text = (*strings_)[r.index * 2 + (shadow ? 1 : 0)];
      if (!text.empty()) return &text;
    }
    return make(policy, r, shadow);
  }
  // The table get() answered from last.
  const Table& table() const { return table_; }

 private:
  const std::string* make(const Policy& policy, const Rule& r, bool shadow);

  std::string_view component_;
  std::shared_ptr<std::vector<std::string>> strings_;
  Table table_;
  std::uint64_t generation_ = 0;  // the policy generation of table_
};

// The audit events of a batch of requests, in order, not yet formatted. Recording copies
// the request's fields only; format() escapes them and makes the JSON lines. Its record
// format is private to it. Not thread-safe: it belongs to one thread at a time (swap()
// hands it over).
class AuditBatch {
 public:
  struct RequestFields {
    std::string_view src, method, url, host, user_agent;
  };

  AuditBatch() = default;
  AuditBatch(const AuditBatch&) = delete;
  AuditBatch& operator=(const AuditBatch&) = delete;

  bool empty() const { return size_ == 0; }
  std::size_t events() const { return events_; }  // recorded events (a ready line is one)
  std::size_t bytes() const { return size_; }     // the records' size, not the JSON's
  void reserve(std::size_t bytes);
  void clear();
  void swap(AuditBatch& other) noexcept;

  // A ready JSON line (with LF), written as it is.
  void add_line(std::string_view line);
  // The bypass and shadow events of one decision (none when it has neither) of
  // `component`'s request `f`, stamped `time`.
  void add_decision(RuleEventJson& json, const Policy& policy, const Decision& d,
                    const RequestFields& f, std::chrono::system_clock::time_point time);
  // The events of one request, stamped `time`: one per entry of `fixed`, each the JSON of
  // an event's fixed fields, strings of `table` (kept alive until clear()).
  void add_request(const RequestFields& f, std::span<const std::string* const> fixed,
                   const RuleEventJson::Table& table, std::chrono::system_clock::time_point time);

  // Appends the JSON lines of every record, in order, to `out`. `scratch` is a buffer the
  // caller keeps between calls.
  void format(std::string& out, std::string& scratch) const;

 private:
  char* extend(std::size_t n);  // room for n more bytes, filled by the caller at once
  void append(const void* p, std::size_t n);

  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0, cap_ = 0;
  std::size_t events_ = 0;
  std::vector<RuleEventJson::Table> tables_;    // the tables the records point into
  std::chrono::system_clock::time_point ts_{};  // of the last time record, if have_ts_
  bool have_ts_ = false;
};

}  // namespace authbypass
