// The squid.conf lines that wire a policy into Squid (docs/architecture.md "CLI"): the
// helper, a built-in prefilter derived from the policy so that only candidate requests
// reach the helper, the http_access order, and the ICAP services.
#pragma once

#include <string>
#include <vector>

#include "authbypass/policy.h"

namespace authbypass {

// helper: the external ACL helper decides before proxy_auth, srv_authbypass verifies.
// icap: decision mode (docs/architecture.md "ICAP service"): srv_authbypass (authbypass.Mode both)
// decides in REQMOD and marks bypassed requests "X-Authbypass: <secret> <rule-id>"; authentication
// moves to adapted_http_access, where marked requests are allowed first.
enum class SquidConfigMode { kHelper, kIcap };

struct SquidConfigOptions {
  SquidConfigMode mode = SquidConfigMode::kHelper;
  std::string helper = "/usr/lib/squid/ext_authbypass_acl";
  std::string policy_path = "/etc/authbypass/policy.yaml";   // as the helper will read it
  std::string audit_log = "/var/log/authbypass/helper.log";  // empty: no --audit-log
  int ttl = 60;
  int children_max = 4;
  int concurrency = 100;
  int queue_size = 1000;
  std::string icap_url = "icap://127.0.0.1:1344/authbypass";  // empty: no ICAP lines (helper mode)

  // Decision mode (kIcap) only.
  std::string secret;           // the shared secret (authbypass.SharedSecretFile); required
  std::string previous_secret;  // also accepted while rotating (empty: none)
  std::string clients = "localnet";  // the ACL of clients that may use the proxy at all
  bool prefilter = true;  // REQMOD only for the policy's candidates (else every request
                          // without credentials)
};

struct SquidConfig {
  std::string text;                   // the drop-in, ready for /etc/squid/conf.d/
  std::vector<std::string> warnings;  // e.g. a rule the prefilter cannot narrow
};

// The prefilter is a superset of what the policy can bypass for requests as Windows sends
// them: for each rule, the Squid ACLs its criteria translate to (dstdomain, dst -n,
// method, port, src, urlpath_regex -i, browser -i); criteria with no safe translation
// (path_regex, most user_agent_regex) are left out, which only widens it. Paths are matched
// by Squid on the raw URL, so a percent-encoded path may miss the prefilter and simply be
// authenticated: the prefilter can narrow what bypasses, never widen it.
//
// Every ACL it writes matches without DNS: names as `dstdomain -n` (an IP-literal URL never
// matches a name and is never looked up), IPs as `dst -n`, clients as `src`.
//
// A bypassed delivery is always a full response fresh from the origin, through the ICAP
// check: `cache deny` for every candidate (helper mode) or every marked request (decision
// mode), so no hit, no revalidated cached copy, nothing stored; and a request with Range,
// Request-Range or If-Range (`authbypass_range`) is never bypassed (it authenticates).
//
// Decision mode: throws std::invalid_argument when the secret (or the previous one) is not
// a valid shared secret (icap::parse_shared_secret) or `clients` is not a safe ACL name.
// The text then holds the secret: it must be installed readable by root and proxy only.
SquidConfig squid_config(const Policy& policy, const SquidConfigOptions& options);

}  // namespace authbypass
