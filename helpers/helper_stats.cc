#include "helper_stats.h"

namespace authbypass::helper {

void Stats::count_rules(const Decision& d, const std::shared_ptr<const Policy>& policy) {
  if (hits_owner_ != policy) fold(policy);
  if (d.bypass() && d.rule) ++hits_[d.rule->index].first;
  for (std::size_t i = 0; i < d.shadow_count; ++i) ++hits_[d.shadow[i]->index].second;
  dirty_ = true;
}

void Stats::withdrawn(const WithdrawnBypass& w) {
  ++counters[HelperCounter::kRefusedUnaudited];
  // The counters said "bypass": it was not one.
  if (counters[HelperCounter::kBypass] > 0) --counters[HelperCounter::kBypass];
  ++counters[HelperCounter::kAuthenticate];
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

std::optional<std::chrono::milliseconds> Stats::write_due_in(
    StatsFileWriter::Clock::time_point now) const {
  if (!writer_.enabled() || !dirty_) return std::nullopt;
  return writer_.due_in(now);
}

void Stats::write_if_due(bool force, const std::shared_ptr<const Policy>& deciding,
                         const Policy* current, std::string_view policy_file,
                         void (*say)(const std::string&), StatsFileWriter::Clock::time_point now) {
  if (!writer_.due(dirty_, force, now)) return;
  dirty_ = false;
  fold(deciding);
  if (auto failed = writer_.write(snapshot(current, policy_file), now)) say(*failed);
}

StatsSnapshot Stats::snapshot(const Policy* p, std::string_view policy_file) const {
  const Counters& c = counters;
  StatsSnapshot st =
      StatsFileWriter::header(StatsSource::kHelper, p ? p->sha256() : "", policy_file);
  st.helper = c.n;
  st[HelperCounter::kLines] = 0;
  for (HelperCounter k :
       {HelperCounter::kBypass, HelperCounter::kAuthenticate, HelperCounter::kBadLines,
        HelperCounter::kMalformedRequests, HelperCounter::kInternalErrors})
    st[HelperCounter::kLines] += c[k];
  st[HelperCounter::kRegexFaults] = p ? p->regex_faults() : 0;
  for (const auto& [id, h] : by_id_) st.rules[id] = {h.first, h.second};
  return st;
}

}  // namespace authbypass::helper
