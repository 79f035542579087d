#include "helper_stats.h"

#include <unistd.h>

#include <algorithm>


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
  if (std::string err; !write_stats_file(file_, snapshot(current, policy_file), &err)) {
    if (!warned_) say("cannot write the stats file: " + err);
    warned_ = true;
  }
}

StatsSnapshot Stats::snapshot(const Policy* p, std::string_view policy_file) const {
  const Counters& c = counters;
  StatsSnapshot st;
  st.source = StatsSource::kHelper;
  st.pid = ::getpid();
  st.ts = std::chrono::system_clock::now();
  if (p) st.policy_sha256 = p->sha256();
  st.policy_file = policy_file;
  st[HelperCounter::kLines] =
      c.bypass + c.authenticate + c.bad_lines + c.malformed_requests + c.internal_errors;
  st[HelperCounter::kBypass] = c.bypass;
  st[HelperCounter::kAuthenticate] = c.authenticate;
  st[HelperCounter::kBadLines] = c.bad_lines;
  st[HelperCounter::kMalformedRequests] = c.malformed_requests;
  st[HelperCounter::kInternalErrors] = c.internal_errors;
  st[HelperCounter::kReloads] = c.reloads;
  st[HelperCounter::kReloadsRejected] = c.reloads_rejected;
  st[HelperCounter::kRegexFaults] = p ? p->regex_faults() : 0;
  st[HelperCounter::kAuditErrors] = c.audit_errors;
  st[HelperCounter::kRefusedUnaudited] = c.refused_unaudited;
  for (const auto& [id, h] : by_id_) st.rules[id] = {h.first, h.second};
  return st;
}

}  // namespace authbypass::helper
