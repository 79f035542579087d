// libFuzzer target: the ICAP service's translation of an encapsulated request (request
// line, Host, User-Agent, X-Client-IP, Content-Length, status line, Content-Type) into the
// engine's input, then the decision. Fields are separated by LF in the input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "authbypass/icap_request.h"
#include "authbypass/policy.h"

using namespace authbypass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static auto policy =
      load_policy_text(
          "version: 1\nrules:\n"
          "  - id: crl\n    match: {path_suffix: [.crl]}\n"
          "  - id: ca\n    match: {hosts: [.example.com], methods: [GET, POST, CONNECT],"
          " ports: [80, 443]}\n",
          "fuzz.yaml")
          .policy;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view f[7];
  for (auto& field : f) {
    std::size_t nl = in.find('\n');
    field = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  auto opt = [](std::string_view v) {
    return v == "-" ? std::nullopt : std::optional<std::string_view>(v);
  };
  icap::Translated t = icap::translate({f[0], opt(f[1]), opt(f[2]), opt(f[3])});
  (void)icap::content_length(opt(f[4]));
  (void)icap::status_of(f[5]);
  (void)icap::media_type(f[6]);
  if (t.ok()) {
    if (t.url.size() > kMaxUrlLength + 1024 + 1024 + 7) __builtin_trap();  // bounded copy
    Request r;
    if (r.parse(t.input())) (void)policy->decide(r, today_utc());
  }
  return 0;
}
