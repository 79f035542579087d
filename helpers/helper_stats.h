// The Squid helper's counters and its --stats-file (read by `authbypass report`).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "authbypass/decision.h"
#include "authbypass/policy.h"
#include "authbypass/stats.h"
#include "helper_answers.h"

namespace authbypass::helper {

class Stats {
 public:
  // The totals, kept whether or not a stats file is written: the snapshot's own typed
  // counters (stats.h), indexed by HelperCounter. kLines and kRegexFaults are derived
  // when a snapshot is taken; the others are counted here.
  struct Counters {
    std::array<std::uint64_t, kHelperCounterCount> n{};
    std::uint64_t& operator[](HelperCounter c) { return n[static_cast<std::size_t>(c)]; }
    std::uint64_t operator[](HelperCounter c) const { return n[static_cast<std::size_t>(c)]; }
  };

  // `file`: the stats file ("%p" stands for the PID); empty: none, and no per-rule counts.
  explicit Stats(std::string file) : writer_(std::move(file)) {}

  Counters counters;

  // Counts one decision of `policy`. Per-rule hits are kept by rule index for the policy
  // in force (no lookup per request) and folded into per-id totals when it changes.
  void count(const Decision& d, const std::shared_ptr<const Policy>& policy) {
    ++counters[d.bypass() ? HelperCounter::kBypass : HelperCounter::kAuthenticate];
    if (writer_.enabled()) count_rules(d, policy);
  }
  // A bypass count() counted that was withdrawn (its audit events were not written): it
  // counts as an authentication refused unaudited, and off its rule's hits.
  void withdrawn(const WithdrawnBypass& w);

  // How long until a pending write is due (zero: now); nullopt when nothing is pending.
  std::optional<std::chrono::milliseconds> write_due_in(
      StatsFileWriter::Clock::time_point now = StatsFileWriter::Clock::now()) const;
  // Writes the file (replaced atomically when regular) if a write is pending and a second
  // has passed since the last, or always when `force`. `deciding` is the policy count()
  // was last given, `current` the one in force now (its hash and regex faults are
  // written), `policy_file` its path. A failed write is said through `say` as
  // StatsFileWriter::write() rules: the first, and the first after a success.
  void write_if_due(bool force, const std::shared_ptr<const Policy>& deciding,
                    const Policy* current, std::string_view policy_file,
                    void (*say)(const std::string&),
                    StatsFileWriter::Clock::time_point now = StatsFileWriter::Clock::now());
  // The counters as the one stats snapshot both adapters write (stats.h); per-rule hits
  // as of the last write.
  StatsSnapshot snapshot(const Policy* current, std::string_view policy_file) const;

 private:
  void count_rules(const Decision& d, const std::shared_ptr<const Policy>& policy);
  void fold(const std::shared_ptr<const Policy>& policy);

  StatsFileWriter writer_;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> by_id_;  // bypass, shadow
  std::vector<std::pair<std::uint64_t, std::uint64_t>> hits_;  // by rule index of hits_owner_
  std::shared_ptr<const Policy> hits_owner_;
  bool dirty_ = false;
};

}  // namespace authbypass::helper
