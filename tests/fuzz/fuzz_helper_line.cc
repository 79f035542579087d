// libFuzzer target: the Squid helper line parser and token decoder, then the engine.
// Properties: never crashes; a parsed line either has an error or a RequestInput whose
// views lie inside the parser's output; every answer is one line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "authbypass/policy.h"
#include "authbypass/squid_helper.h"

using namespace authbypass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static auto policy = load_policy_text(
                           "version: 1\nrules:\n"
                           "  - id: crl\n    match: {path_suffix: [.crl]}\n"
                           "  - id: ca\n    match: {hosts: [.example.com, 192.0.2.0/24]}\n"
                           "  - id: ua\n    mode: shadow\n    match: {user_agent_regex: ['^A(b+)+$']}\n",
                           "fuzz.yaml")
                           .policy;
  static squid::LineParser parsers[] = {
      {squid::Format::default_format(), squid::ChannelMode::kAuto},
      {squid::Format::default_format(), squid::ChannelMode::kYes},
      {*squid::Format::parse("%METHOD %>rd %>rP %PATH %URI %>ha{User-Agent}", nullptr),
       squid::ChannelMode::kNo},
  };
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.size() > squid::kMaxLineBytes) return 0;
  Request req;
  for (auto& p : parsers) {
    const squid::ParsedLine& line = p.parse(in);
    std::string out;
    if (!line.error.empty()) {
      squid::append_error(out, line.channel, line.error);
    } else if (req.parse(line.input)) {
      squid::append_decision(out, line.channel, policy->decide(req, today_utc()));
    } else {
      squid::append_error(out, line.channel, req.error());
    }
    if (out.empty() || out.back() != '\n' || out.find('\n') != out.size() - 1) __builtin_trap();
  }
  return 0;
}
