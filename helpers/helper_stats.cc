#include "helper_stats.h"

#include <unistd.h>

#include <algorithm>

#include "authbypass/audit.h"
#include "authbypass/output_file.h"

namespace authbypass::helper {

void Stats::count_rules(const Decision& d, const std::shared_ptr<const Policy>& policy) {
  if (hits_owner_ != policy) fold(policy);
  if (d.bypass() && d.rule) ++hits_[d.rule->index].first;
  for (std::size_t i = 0; i < d.shadow_count; ++i) ++hits_[d.shadow[i]->index].second;
  dirty_ = true;
}

void Stats::withdrawn(const WithdrawnBypass& w) {
  ++counters.refused_unaudited;
  if (counters.bypass > 0) --counters.bypass;  // the counters said "bypass": it was not one
  ++counters.authenticate;
  if (hits_owner_ && hits_owner_->generation() == w.policy && w.rule_index < hits_.size() &&
      hits_[w.rule_index].first > 0)
    --hits_[w.rule_index].first;
}

void Stats::fold(const std::shared_ptr<const Policy>& policy) {
  if (hits_owner_) {
    const auto& rules = hits_owner_->rules();
    for (std::size_t i = 0; i < hits_.size() && i < rules.size(); ++i) {
      if (hits_[i].first == 0 && hits_[i].second == 0) continue;
      auto& slot = by_id_[rules[i].id];
      slot.first += hits_[i].first;
      slot.second += hits_[i].second;
    }
  }
  hits_owner_ = policy;
  hits_.assign(policy ? policy->rules().size() : 0, {0, 0});
}

std::optional<std::chrono::milliseconds> Stats::write_due_in() const {
  if (file_.empty() || !dirty_) return std::nullopt;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      last_write_ + std::chrono::seconds(1) - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

void Stats::write_if_due(bool force, const std::shared_ptr<const Policy>& deciding,
                         const Policy* current, std::string_view policy_file,
                         void (*say)(const std::string&)) {
  if (file_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && (!dirty_ || now - last_write_ < std::chrono::seconds(1))) return;
  last_write_ = now;
  dirty_ = false;
  fold(deciding);
  std::string path = file_;
  if (auto at = path.find("%p"); at != std::string::npos)
    path.replace(at, 2, std::to_string(::getpid()));
  OutputFileOptions o;
  o.create_mode = 0640;
  o.durable = false;  // rewritten every second: no fsync on the answering thread
  if (auto r = write_output_file(path, json(current, policy_file), o); !r) {
    if (!warned_) say("cannot write the stats file: " + r.message);
    warned_ = true;
  }
}

std::string Stats::json(const Policy* p, std::string_view policy_file) const {
  const Counters& c = counters;
  std::string j = "{\"stats\":\"ext_authbypass_acl\",\"pid\":" + std::to_string(::getpid());
  auto num = [&](const char* k, std::uint64_t v) {
    j += ",\"";
    j += k;
    j += "\":" + std::to_string(v);
  };
  j += ",\"ts\":";
  append_json_string(j, audit_timestamp(std::chrono::system_clock::now()));
  j += ",\"policy_sha256\":";
  append_json_string(j, p ? p->sha256() : std::string());
  j += ",\"policy_file\":";
  append_json_string(j, policy_file);
  num("lines", c.bypass + c.authenticate + c.bad_lines + c.malformed_requests + c.internal_errors);
  num("bypass", c.bypass);
  num("authenticate", c.authenticate);
  num("bad_lines", c.bad_lines);
  num("malformed_requests", c.malformed_requests);
  num("internal_errors", c.internal_errors);
  num("reloads", c.reloads);
  num("reloads_rejected", c.reloads_rejected);
  num("regex_faults", p ? p->regex_faults() : 0);
  num("audit_errors", c.audit_errors);
  num("refused_unaudited", c.refused_unaudited);
  j += ",\"rules\":{";
  bool first = true;
  for (const auto& [id, h] : by_id_) {
    if (!first) j += ',';
    first = false;
    append_json_string(j, id);
    j +=
        ":{\"bypass\":" + std::to_string(h.first) + ",\"shadow\":" + std::to_string(h.second) + "}";
  }
  j += "}}\n";
  return j;
}

}  // namespace authbypass::helper
