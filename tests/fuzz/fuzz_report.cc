// libFuzzer target: the audit-log reader of `authbypass report` (JSON events, Squid
// access-log lines, helper stats files), line by line, then every output format.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "authbypass/report.h"

using namespace authbypass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static auto policy =
      load_policy_text("version: 1\nrules:\n  - id: ca\n    match: {hosts: [.verisign.com]}\n",
                       "fuzz.yaml")
          .policy;
  ReportOptions o;
  o.policy = policy;
  o.hours = std::pair{7, 20};
  o.burst_per_minute = 2;
  ReportBuilder r(o);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (!in.empty()) {
    std::size_t nl = in.find('\n');
    r.add_line(in.substr(0, nl));
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  (void)r.text();
  (void)r.json();
  (void)r.csv();
  return 0;
}
