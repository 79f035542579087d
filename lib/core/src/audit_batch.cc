#include "authbypass/audit_batch.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "authbypass/audit.h"

namespace authbypass {

// Record format (this file's alone): a kind byte, then
//   'L'  a u32 length and that many bytes: a ready line;
//   'T'  an i64 (system_clock ticks): the time of the request records after it, written
//        when it changes;
//   'R'  the u32 lengths of the five request fields, a u32 event count, that many
//        pointers to the events' fixed fields (strings of a RuleEventJson table that
//        tables_ keeps alive), then the fields' bytes: one request's events.

const std::string* RuleEventJson::make(const Policy& policy, const Rule& r, bool shadow) {
  if (!strings_ || generation_ != policy.generation()) {
    generation_ = policy.generation();
    strings_ = std::make_shared<std::vector<std::string>>(policy.rules().size() * 2);
    table_ = strings_;
  }
  std::string& text = (*strings_)[r.index * 2 + (shadow ? 1 : 0)];
  if (text.empty()) {  // a filled entry never changes
    text = audit_fixed_fields(
        rule_event(component_, shadow ? "shadow" : "bypass", &r, policy.sha256(), {}));
  }
  return &text;
}

void AuditBatch::reserve(std::size_t n) {
  if (n <= cap_) return;
  auto bigger = std::make_unique_for_overwrite<char[]>(n);
  if (size_ != 0) std::memcpy(bigger.get(), data_.get(), size_);
  data_ = std::move(bigger);
  cap_ = n;
}

char* AuditBatch::extend(std::size_t n) {
  if (size_ + n > cap_) reserve(std::max(size_ + n, cap_ * 2));
  char* w = data_.get() + size_;
  size_ += n;
  return w;
}

void AuditBatch::append(const void* p, std::size_t n) {
  if (n != 0) std::memcpy(extend(n), p, n);
}

void AuditBatch::clear() {
  size_ = 0;
  events_ = 0;
  tables_.clear();
  have_ts_ = false;
}

void AuditBatch::swap(AuditBatch& o) noexcept {
  data_.swap(o.data_);
  std::swap(size_, o.size_);
  std::swap(cap_, o.cap_);
  std::swap(events_, o.events_);
  tables_.swap(o.tables_);
  std::swap(ts_, o.ts_);
  std::swap(have_ts_, o.have_ts_);
}

void AuditBatch::add_line(std::string_view line) {
  const char kind = 'L';
  const auto n = static_cast<std::uint32_t>(line.size());
  append(&kind, 1);
  append(&n, sizeof n);
  append(line.data(), line.size());
  ++events_;
}

void AuditBatch::add_decision(RuleEventJson& json, const Policy& policy, const Decision& d,
                              const RequestFields& f, std::chrono::system_clock::time_point time) {
  const std::string* fixed[1 + Decision::kMaxShadow];
  std::size_t n = 0;
  if (d.bypass()) fixed[n++] = json.get(policy, *d.rule, false);
  for (std::size_t i = 0; i < d.shadow_count; ++i)
    fixed[n++] = json.get(policy, *d.shadow[i], true);
  if (n != 0) add_request(f, std::span(fixed, n), json.table(), time);
}

void AuditBatch::add_request(const RequestFields& f, std::span<const std::string* const> fixed,
                             const RuleEventJson::Table& table,
                             std::chrono::system_clock::time_point time) {
  if (fixed.empty()) return;
  if (tables_.empty() || tables_.back() != table) tables_.push_back(table);
  if (!have_ts_ || time != ts_) {  // held batches: each keeps the time it was read
    const char kind = 'T';
    const auto ticks = static_cast<std::int64_t>(time.time_since_epoch().count());
    append(&kind, 1);
    append(&ticks, sizeof ticks);
    ts_ = time;
    have_ts_ = true;
  }
  const std::string_view parts[] = {f.src, f.method, f.url, f.host, f.user_agent};
  std::uint32_t head[6] = {};
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < 5; ++i) {
    head[i] = static_cast<std::uint32_t>(parts[i].size());
    bytes += parts[i].size();
  }
  head[5] = static_cast<std::uint32_t>(fixed.size());
  char* w = extend(1 + sizeof head + fixed.size_bytes() + bytes);
  *w++ = 'R';
  std::memcpy(w, head, sizeof head);
  w += sizeof head;
  std::memcpy(w, fixed.data(), fixed.size_bytes());
  w += fixed.size_bytes();
  for (const std::string_view part : parts) {
    if (part.empty()) continue;
    std::memcpy(w, part.data(), part.size());
    w += part.size();
  }
  events_ += fixed.size();
}

void AuditBatch::format(std::string& out, std::string& scratch) const {
  const char* p = data_.get();
  const char* const end = p + size_;
  auto u32 = [&p] {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    p += 4;
    return v;
  };
  std::chrono::system_clock::time_point time{};
  while (p < end) {
    const char kind = *p++;
    if (kind == 'L') {
      const std::uint32_t n = u32();
      out.append(p, n);
      p += n;
      continue;
    }
    if (kind == 'T') {
      std::int64_t ticks;
      std::memcpy(&ticks, p, sizeof ticks);
      p += sizeof ticks;
      time = std::chrono::system_clock::time_point(std::chrono::system_clock::duration(ticks));
      continue;
    }
    std::uint32_t len[5];
    for (auto& l : len) l = u32();
    const std::uint32_t n = u32();
    const char* fixed = p;
    p += std::size_t{n} * sizeof(const std::string*);
    std::string_view field[5];
    for (std::size_t i = 0; i < 5; ++i) {
      field[i] = std::string_view(p, len[i]);
      p += len[i];
    }
    AuditEvent e;
    e.src = field[0];
    e.method = field[1];
    e.url = field[2];
    e.host = field[3];
    e.user_agent = field[4];
    if (n > 1) {  // escape the request's fields once for all its events
      scratch.clear();
      append_audit_request_fields(scratch, e);
      e.request_json = scratch;
    }
    for (std::uint32_t k = 0; k < n; ++k) {
      const std::string* text;
      std::memcpy(&text, fixed + std::size_t{k} * sizeof text, sizeof text);
      e.fixed_json = *text;
      append_audit_json(out, e, time);
    }
  }
}

}  // namespace authbypass
