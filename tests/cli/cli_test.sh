#!/usr/bin/env bash
# usage: cli_test.sh CASE AUTHBYPASS_BINARY SOURCE_DIR
# Each case runs the real CLI and checks its exit code and output.
set -u
case_name=$1 ab=$2 src=$3
policy=$src/config/policy.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL [$case_name]: $*"; echo "--- stdout"; cat "$tmp/out"; echo "--- stderr"; cat "$tmp/err"; exit 1; }
run() { "$ab" "$@" >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc"; }
expect_rc() { [ "$(cat "$tmp/rc")" = "$1" ] || fail "exit code $(cat "$tmp/rc"), expected $1"; }
expect_out() { grep -qF -- "$1" "$tmp/out" || fail "stdout lacks: $1"; }
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks: $1"; }

case $case_name in
help)
  run --help; expect_rc 0; expect_out "usage: authbypass COMMAND"; expect_out "explain POLICY --url URL" ;;
version)
  run --version; expect_rc 0; expect_out "authbypass " ;;
usage_errors)
  run; expect_rc 2
  run frobnicate; expect_rc 2; expect_err "unknown command 'frobnicate'"; expect_err "authbypass --help"
  run check; expect_rc 2; expect_err "check needs exactly one POLICY file"
  run check "$policy" --bogus; expect_rc 2; expect_err "unknown option '--bogus'"
  run check "$policy" --date 2026-13-01; expect_rc 2; expect_err "bad --date '2026-13-01'"
  run explain "$policy"; expect_rc 2; expect_err "explain needs --url URL"
  run explain "$policy" --url; expect_rc 2; expect_err "option '--url' needs a value" ;;
check_shipped)
  run check "$policy"; expect_rc 0
  expect_out "OK: policy valid"; expect_out " passed, 0 failed"
  expect_out "warning: rule 'crl-files': matches on client-controlled data alone" ;;
check_strict)
  run check --strict "$policy"; expect_rc 1; expect_out "(--strict)" ;;
check_wildcard_hosts)
  cat >"$tmp/p.yaml" <<'YAML'
version: 1
rules:
  - id: ca-hosts
    match: {hosts: [crl.example.com, .example.net]}
  - id: ca-files
    match: {hosts: [.example.org], path_suffix: [.crl]}
  - id: signin
    match: {methods: [CONNECT], ports: [443], hosts: [.login.example.com]}
  - id: watch
    mode: shadow
    match: {hosts: [.example.info]}
YAML
  run check "$tmp/p.yaml"; expect_rc 0
  expect_out "$tmp/p.yaml:3:5: warning: rule 'ca-hosts': hosts entry '.example.net' covers example.net and every host under it, for any path (a web site or download host there skips authentication too): list the host names this rule is for, or add path_prefix/path_suffix."
  expect_out "$tmp/p.yaml:7:5: warning: rule 'signin': hosts entry '.login.example.com' covers login.example.com and every host under it, for any path (a web site or download host there skips authentication too): list the host names this rule is for."
  grep -q "'ca-files': hosts entry" "$tmp/out" && fail "a wildcard with a path criterion warned"
  grep -q "'watch': hosts entry" "$tmp/out" && fail "a shadow rule's wildcard warned"
  grep -q "crl.example.com' covers" "$tmp/out" && fail "a host name warned"
  run check --strict "$tmp/p.yaml"; expect_rc 1; expect_out "(--strict)" ;;
check_no_icap)
  cat >"$tmp/p.yaml" <<'YAML'
version: 1
rules:
  - id: crl-files
    match: {path_suffix: [.crl]}
    verify: crl
  - id: pki
    match: {hosts: [www.example.com], path_prefix: [/pki/]}
    verify: revocation
  - id: plain
    match: {hosts: [h.example.com]}
    verify: none
YAML
  run check "$tmp/p.yaml"; expect_rc 0
  expect_out "note: 2 rules (crl-files, pki) rely on the ICAP service for their verify check; without it they deliver whatever the origin sends. 'authbypass check --no-icap $tmp/p.yaml' lists what each lets through then."
  grep -q "is not enforced without the ICAP service" "$tmp/out" && fail "per-rule ICAP warnings without --no-icap"
  expect_out "OK: policy valid, 1 warnings"
  run check --no-icap "$tmp/p.yaml"; expect_rc 0
  expect_out "$tmp/p.yaml:3:5: warning: rule 'crl-files': verify: crl is not enforced without the ICAP service: whatever the origin answers (any host, GET, HEAD on port 80, paths ending in .crl) reaches clients without credentials unchecked, a program included. Deploy the ICAP service (the ICAP lines of \`authbypass squid-config\` and the c-icap include) or remove the rule."
  expect_out "$tmp/p.yaml:6:5: warning: rule 'pki': verify: revocation is not enforced without the ICAP service: whatever the origin answers (hosts www.example.com, GET, HEAD on port 80, paths under /pki/) reaches clients without credentials unchecked"
  grep -q "rule 'plain': verify" "$tmp/out" && fail "a verify: none rule in the ICAP warnings"
  grep -q "^note: " "$tmp/out" && fail "the note beside --no-icap"
  expect_out "OK: policy valid, 3 warnings"
  run check --no-icap --strict "$tmp/p.yaml"; expect_rc 1; expect_out "(--strict)"
  run check --no-icap "$policy"; expect_rc 0
  expect_out "warning: rule 'crl-files': verify: crl is not enforced without the ICAP service: whatever the origin answers (any host, GET, HEAD on port 80, paths ending in .crl)"
  run check "$policy"; expect_rc 0; expect_out "rely on the ICAP service for their verify check" ;;
test_shipped)
  run test "$policy"; expect_rc 0
  grep -qE '^[0-9]+ passed, 0 failed$' "$tmp/out" || fail "no 'N passed, 0 failed' line"
  n=$(sed -nE 's/^([0-9]+) passed.*/\1/p' "$tmp/out"); [ "$n" -ge 30 ] || fail "only $n tests" ;;
check_broken)
  printf 'version: 1\nrules:\n  - id: r\n    match: {hosts: ["*.evil.test"]}\n' >"$tmp/p.yaml"
  run check "$tmp/p.yaml"; expect_rc 1
  expect_err "$tmp/p.yaml:4:21: hosts entry '*.evil.test': write '.evil.test'"
  expect_err "policy not loaded (1 error); fix the file and run 'authbypass check $tmp/p.yaml' again"
  printf 'version: 1\nrules: [\n' >"$tmp/p.yaml"; run test "$tmp/p.yaml"; expect_rc 1
  head -c 100000 /dev/urandom >"$tmp/p.yaml"; run check "$tmp/p.yaml"; expect_rc 1
  : >"$tmp/p.yaml"; run check "$tmp/p.yaml"; expect_rc 1; expect_err "policy is empty" ;;
check_missing)
  run check "$tmp/nope.yaml"; expect_rc 1; expect_err "cannot read policy: No such file or directory" ;;
check_failing_test)
  cat >"$tmp/p.yaml" <<'YAML'
version: 1
rules:
  - id: crl
    match: {path_suffix: [.crl]}
tests:
  - name: query is not the path
    request: {url: "http://evil.test/x.exe?x=.crl"}
    expect: bypass
YAML
  run check "$tmp/p.yaml"; expect_rc 1
  expect_out "p.yaml:6:5: FAIL query is not the path: expected bypass, got authenticate (no rule matched)"
  expect_out "0 passed, 1 failed"
  run test "$tmp/p.yaml"; expect_rc 1; expect_out "0 passed, 1 failed" ;;
explain_bypass)
  run explain "$policy" --url http://crl.microsoft.com/pki/crl/products/MicRooCerAut2011_2011_03_22.crl \
    --user-agent Microsoft-CryptoAPI/10.0 --src 10.1.2.3
  expect_rc 0; expect_out "decision: BYPASS"; expect_out "shadow:   rule 'cryptoapi-ua-observe'" ;;
explain_authenticate)
  printf 'version: 1\nrules:\n  - id: crl\n    match: {path_suffix: [.crl]}\n' >"$tmp/p.yaml"
  run explain "$tmp/p.yaml" --method POST --url 'http://evil.test/x.exe?x=.crl'
  expect_rc 0; expect_out "decision: AUTHENTICATE: no rule matched"
  expect_out "FAIL method: method POST is not allowed"
  expect_out "the query is never matched"
  run explain "$tmp/p.yaml" --url 'http://evil.test/x.crl;/../evil.exe'
  expect_rc 0; expect_out "decision: AUTHENTICATE: no rule matched"
  expect_out "FAIL path: path '/x.crl;/../evil.exe' is never matched: the path has ;params, which origins resolve differently (a path that readers may resolve differently never matches path_* criteria)"
  run explain "$tmp/p.yaml" --url 'http://evil.test/a//../x.crl'
  expect_out "FAIL path: path '/a//../x.crl' is never matched: the path has an empty segment ('//')" ;;
explain_malformed)
  run explain "$policy" --url http://3221225991/x.crl
  expect_rc 0; expect_out "decision: AUTHENTICATE: the request is malformed (host is a numeric form" ;;
squid_config)
  run squid-config "$policy"; expect_rc 0
  expect_out "external_acl_type authbypass ttl=60"; expect_out "children-startup=0"
  expect_out "http_access allow authbypass_candidates authbypass"
  expect_out "acl ab_crl-files_path urlpath_regex -i \.crl"
  run squid-config "$policy" --no-icap --no-audit; expect_rc 0
  grep -q icap_service "$tmp/out" && fail "ICAP lines despite --no-icap"
  grep -q -- "--audit-log" "$tmp/out" && fail "--audit-log despite --no-audit"
  run squid-config; expect_rc 2; expect_err "squid-config needs exactly one POLICY file"
  run squid-config "$policy" --ttl x; expect_rc 2; expect_err "--ttl needs seconds 0-86400"
  run squid-config "$policy" --helper "/a b"; expect_rc 2; expect_err "cannot hold spaces"
  run squid-config "$tmp/nope.yaml"; expect_rc 1; expect_err "cannot read policy" ;;
report)
  cat >"$tmp/a.log" <<'LOG'
{"ts":"2026-11-02T10:00:00.000Z","component":"helper","event":"bypass","rule":"crl-files","owner":"secops@example.com","src":"10.0.0.1","method":"GET","url":"http://crl.verisign.com/pca3.crl","host":"crl.verisign.com","user_agent":"Microsoft-CryptoAPI/10.0"}
{"ts":"2026-11-02T10:00:01.000Z","component":"icap","event":"blocked","rule":"crl-files","src":"10.0.0.2","url":"http://evil.test/x.crl","host":"evil.test","reason":"not revocation data: HTML/XML"}
garbage
LOG
  gzip -c "$tmp/a.log" >"$tmp/a.log.gz"
  run report "$tmp/a.log" "$tmp/a.log.gz" --policy "$policy"; expect_rc 0
  expect_out "time range: 2026-11-02T10:00:00.000Z .. 2026-11-02T10:00:01.000Z"
  expect_out "not revocation data: HTML/XML"; expect_out "Rules never hit"
  expect_err "2 malformed lines skipped"
  run report "$tmp/a.log" --format json; expect_rc 0
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["events"]["helper/bypass"]==1, d' "$tmp/out" || fail "JSON output"
  run report "$tmp/a.log" --format csv; expect_rc 0; expect_out "rule,crl-files,2,"
  run report; expect_rc 2; expect_err "report needs at least one LOG file"
  run report "$tmp/a.log" --since yesterday; expect_rc 2; expect_err "bad --since 'yesterday'"
  run report "$tmp/a.log" --hours 7; expect_rc 2; expect_err "bad --hours '7'"
  run report "$tmp/a.log" --format xml; expect_rc 2
  run report "$tmp/nope.log"; expect_rc 1; expect_err "nope.log: cannot open" ;;
include)
  mkdir -p "$tmp/parts"
  printf 'version: 1\nrules:\n  - id: gen\n    match: {hosts: [.digicert.com]}\n' >"$tmp/parts/gen.yaml"
  printf 'version: 1\ninclude: [parts/gen.yaml]\nrules:\n  - id: hand\n    match: {hosts: [a.test]}\n' >"$tmp/p.yaml"
  run check "$tmp/p.yaml"; expect_rc 0; expect_out "2 rules"; expect_out "includes $tmp/parts/gen.yaml (1 rules)"
  run explain "$tmp/p.yaml" --url http://crl3.digicert.com/x.crl; expect_rc 0
  expect_out "decision: BYPASS"; expect_out "$tmp/parts/gen.yaml:3:5"
  printf 'version: 1\nrules: [\n' >"$tmp/parts/gen.yaml"
  run check "$tmp/p.yaml"; expect_rc 1; expect_err "$tmp/parts/gen.yaml:3:1: not valid YAML" ;;
m365_usage)
  run m365; expect_rc 2; expect_err "m365 needs a subcommand: import, ips or diff"
  run m365 frob; expect_rc 2; expect_err "unknown m365 subcommand 'frob'"
  run --help; expect_rc 0; expect_out "m365 import ENDPOINTS.json --policy-out FILE"; expect_out "m365 diff CHANGES.json" ;;
m365_import)
  d=$src/tests/data/m365
  run m365 import "$d/endpoints-2024053100.json" --version-file "$d/version.json" \
    --owner secops@example.com --ticket SEC-1010 --policy-out "$tmp/m365.yaml"
  expect_rc 0
  expect_out "wrote $tmp/m365.yaml: 4 rules (m365-84-ocsp, m365-84, m365-125-ocsp, m365-125) from endpoint list version 2024053100"
  expect_err "note: set 84: 'www.microsoft.com' not imported: a general web site"
  expect_err "note: set 84: TCP 443 not imported"
  grep -q '^# Source: Microsoft 365 endpoint list version 2024053100$' "$tmp/m365.yaml" || fail "no version in the header"
  grep -q 'description: "Microsoft 365 endpoint set 84 (Common, Default, required), endpoint list version 2024053100' "$tmp/m365.yaml" || fail "no version in the description"
  ls "$tmp" | grep -q '\.tmp\.' && fail "temporary file left behind"
  cp "$tmp/m365.yaml" "$tmp/good.yaml"
  run check "$tmp/m365.yaml"; expect_rc 0; expect_out "OK: policy valid, "; expect_out " passed, 0 failed"
  run explain "$tmp/m365.yaml" --url http://crl.microsoft.com/pki/crl/products/MicRooCerAut2011_2011_03_22.crl
  expect_rc 0; expect_out "decision: BYPASS (no proxy authentication) by rule 'm365-84'"; expect_out "verify revocation"
  run explain "$tmp/m365.yaml" --method CONNECT --url crl.microsoft.com:443
  expect_rc 0; expect_out "decision: AUTHENTICATE"
  # An include that widens the policy fails the shipped policy's narrow-by-design tests:
  # set 125's wildcards (*.entrust.net, ...) cover the CAs' web sites.
  sed 's/^version: 1$/version: 1\ninclude: [m365.yaml]/' "$policy" >"$tmp/policy.yaml"
  run check "$tmp/policy.yaml"; expect_rc 1
  expect_out "FAIL Narrow by design: Entrust's web site download (www.entrust.net) authenticates: expected authenticate, got bypass (rule m365-125)"
  # Beside the shipped hand-edited policy (include:), set 84's rules keep its tests passing.
  run m365 import "$d/endpoints-2024053100.json" --version-file "$d/version.json" --ids 84 \
    --owner secops@example.com --ticket SEC-1010 --policy-out "$tmp/m365-84.yaml"
  expect_rc 0
  sed 's/^version: 1$/version: 1\ninclude: [m365-84.yaml]/' "$policy" >"$tmp/policy.yaml"
  run check "$tmp/policy.yaml"; expect_rc 0; expect_out " passed, 0 failed"
  run explain "$tmp/policy.yaml" --url http://crl3.digicert.com/DigiCertGlobalRootG2.crl; expect_rc 0; expect_out "decision: BYPASS"
  run explain "$tmp/policy.yaml" --url http://www.digicert.com/; expect_rc 0; expect_out "decision: AUTHENTICATE"
  # Wildcards inside names are reported, never guessed; --connect is needed for HTTPS sets.
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --ids 8,39 --connect --policy-out -
  expect_rc 0; expect_out "  - id: m365-8-connect"; expect_out "        - .outlook.com"
  expect_err "'autodiscover.*.onmicrosoft.com' not imported: a wildcard inside a name"
  expect_err "'*-files.sharepoint.com' not imported"
  grep -q 'sharepoint.com$' "$tmp/out" && fail "a tenant wildcard was guessed"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --ids 8,39 --policy-out "$tmp/none.yaml"
  expect_rc 1; expect_err "nothing to import from sets 8, 39"; expect_err "nothing was written"
  [ -e "$tmp/none.yaml" ] && fail "a file was written on failure"
  # Broken input: exit 1, the previous file stays as it was.
  for f in bad-json-truncated.json bad-cidr-prefix.json missing-fields.json absurd-cidrs.json duplicate-key.json; do
    run m365 import "$d/$f" --version 2024053100 --policy-out "$tmp/m365.yaml"; expect_rc 1
    expect_err "endpoint list not read"; cmp -s "$tmp/m365.yaml" "$tmp/good.yaml" || fail "$f: output changed"
  done
  run m365 import "$d/bad-cidr-prefix.json" --version 2024053100 --policy-out "$tmp/x.yaml"
  expect_err "record 1 (id 11): 'ips' entry '1.2.3.4/33': bad prefix length"
  run m365 import "$d/renumbered.json" --version 2024053100 --policy-out "$tmp/x.yaml"
  expect_rc 1; expect_err "set 84 is taken as a revocation set"; expect_err "(sets with CRL/OCSP-like hosts: 201)"
  run m365 import "$d/renumbered.json" --version 2024053100 --revocation-ids 201 --policy-out "$tmp/x.yaml"
  expect_rc 0; expect_out "1 rule (m365-201)"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --shadow --expires 2099-01-01 --policy-out "$tmp/s.yaml"
  expect_rc 0; grep -q '    mode: shadow' "$tmp/s.yaml" || fail "no shadow mode"
  run check "$tmp/s.yaml"; expect_rc 0
  run m365 import "$d/nope.json" --version 2024053100 --policy-out "$tmp/x.yaml"; expect_rc 1; expect_err "cannot read"
  run m365 import "$d/endpoints-2024053100.json" --version-file "$d/not-a-list.json" --policy-out "$tmp/x.yaml"; expect_rc 0
  run m365 import "$d/endpoints-2024053100.json" --version-file "$d/bad-json-truncated.json" --policy-out "$tmp/x.yaml"; expect_rc 1
  # Usage errors.
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100; expect_rc 2; expect_err "needs --policy-out FILE"
  run m365 import "$d/endpoints-2024053100.json" --policy-out "$tmp/x.yaml"; expect_rc 2; expect_err "needs --version VERSION or --version-file FILE"
  run m365 import "$d/endpoints-2024053100.json" --version 'a b' --policy-out "$tmp/x.yaml"; expect_rc 2
  run m365 import "$d/endpoints-2024053100.json" --version 1 --version-file "$d/version.json" --policy-out "$tmp/x.yaml"; expect_rc 2
  run m365 import "$d/endpoints-2024053100.json" --version 1 --ids 84,x --policy-out "$tmp/x.yaml"; expect_rc 2; expect_err "--ids needs a list"
  run m365 import "$d/endpoints-2024053100.json" --version 1 --service-areas Common, --policy-out "$tmp/x.yaml"; expect_rc 2
  run m365 import "$d/endpoints-2024053100.json" --version 1 --expires tomorrow --policy-out "$tmp/x.yaml"; expect_rc 2
  run m365 import "$d/endpoints-2024053100.json" --version 1 --service-areas Skpe --policy-out "$tmp/x.yaml"
  expect_rc 1; expect_err "no endpoint set has serviceArea 'Skpe'" ;;
m365_ips)
  d=$src/tests/data/m365
  run m365 ips "$d/endpoints-2024053100.json"; expect_rc 0
  expect_err "68 ranges (aggregated from 116)"
  grep -qx '52.96.0.0/12' "$tmp/out" || fail "52.96.0.0/12 not aggregated"
  grep -qx '2a01:111:f402::/47' "$tmp/out" || fail "IPv6 not aggregated"
  [ "$(head -1 "$tmp/out")" = "13.107.6.152/31" ] || fail "order"
  grep -vqE '^[0-9a-f:.]+/[0-9]+$' "$tmp/out" && fail "plain output has other lines"
  cp "$tmp/out" "$tmp/plain1"; run m365 ips "$d/endpoints-2024053100.json"; cmp -s "$tmp/out" "$tmp/plain1" || fail "not deterministic"
  run m365 ips "$d/endpoints-2024053100.json" --ipv6 --service-areas Skype --category Optimize
  expect_rc 0; [ "$(cat "$tmp/out")" = "2603:1063::/38" ] || fail "selection"
  run m365 ips "$d/endpoints-2024053100.json" --format nft --version-file "$d/version-all.json" --out "$tmp/m365.nft"
  expect_rc 0; grep -q '^set m365_v4 {$' "$tmp/m365.nft" || fail "no nft set"
  grep -q 'version 2024053100' "$tmp/m365.nft" || fail "no version in the nft header"
  if command -v nft >/dev/null && printf 'table inet t { set s { type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } } }\n' | nft -c -f - 2>/dev/null; then
    printf 'table inet authbypass_test {\ninclude "%s"\n}\n' "$tmp/m365.nft" >"$tmp/wrap.nft"
    nft -c -f "$tmp/wrap.nft" >"$tmp/out" 2>"$tmp/err" || fail "nft rejects the set"
  fi
  run m365 ips "$d/endpoints-2024053100.json" --format iptables-restore --ipv4 --name M365_SKYPE --service-areas Skype
  expect_rc 0; expect_out "*filter"; expect_out ":M365_SKYPE - [0:0]"; expect_out "-A M365_SKYPE -d 52.112.0.0/14 -j ACCEPT"; expect_out "COMMIT"
  run m365 ips "$d/endpoints-2024053100.json" --format squid-acl --ids 9
  expect_rc 0; expect_out "acl m365 dst 40.92.0.0/15"; expect_out "acl m365 dst 2a01:111:f400::/48"
  run m365 ips "$d/endpoints-2024053100.json" --format iptables-restore; expect_rc 2; expect_err "needs --ipv4"
  run m365 ips "$d/endpoints-2024053100.json" --ipv4 --ipv6; expect_rc 2
  run m365 ips "$d/endpoints-2024053100.json" --format pf; expect_rc 2; expect_err "--format must be plain, nft, iptables-restore or squid-acl"
  run m365 ips "$d/endpoints-2024053100.json" --category Fast; expect_rc 2; expect_err "unknown --category 'Fast'"
  run m365 ips "$d/endpoints-2024053100.json" --name 'x;y'; expect_rc 2
  run m365 ips "$d/endpoints-2024053100.json" --ids 84; expect_rc 1; expect_err "list no IP ranges"
  run m365 ips "$d/bad-cidr-hostbits.json"; expect_rc 1; expect_err "has bits set past the /14 prefix"
  run m365 ips "$d/absurd-cidrs.json"; expect_rc 1; expect_err "'0.0.0.0/0': a /0 block is absurdly wide"
  run m365 ips "$d/bad-ports.json"; expect_rc 1; expect_err "'443,,80' has an empty item"
  run m365 ips "$d/wrong-types.json"; expect_rc 1; expect_err "'tcpPorts' must be a string, not a number"
  run m365 ips; expect_rc 2 ;;
m365_diff)
  d=$src/tests/data/m365
  run m365 diff "$d/endpoints-2024043000.json" "$d/endpoints-2024053100.json" --old-version 2024043000 --new-version 2024053100
  expect_rc 0; expect_out "(version 2024043000) -> "; expect_out "    + url  oneocsp.microsoft.com"
  expect_out "    - url  *.omniroot.com"; expect_out "    + ip   52.122.0.0/15"; expect_out "    ~ tcpPorts: 80,443 -> 443"
  expect_out "Summary: 1 set added, 1 removed, 5 changed"; expect_out "Revocation sets changed: 84, 125"
  run m365 diff "$d/endpoints-2024043000.json" "$d/endpoints-2024053100.json" --format json; expect_rc 0
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c={x["endpointSetId"]:x for x in d["changes"]}; assert c[84]["add"]["urls"]==["oneocsp.microsoft.com"], c[84]; assert c[35]["disposition"]=="remove"; assert d["summary"]["revocationSetsChanged"]==[84,125]' "$tmp/out" || fail "JSON patch"
  run m365 diff "$d/endpoints-2024053100.json" "$d/endpoints-2024053100.json"; expect_rc 0; expect_out "no changes"
  run m365 diff "$d/changes-2024053100.json" --endpoints "$d/endpoints-2024053100.json"; expect_rc 0
  expect_out "set 84 changed (change 3085, version 2024053100, impact AddedUrl, effective 20240531)"
  expect_out "SharePoint:"
  run m365 diff "$d/changes-2024053100.json" --format json; expect_rc 0
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["changes"])==7' "$tmp/out" || fail "JSON of /changes"
  run m365 diff "$d/changes-bad.json"; expect_rc 1; expect_err "disposition 'Rename' is not Add, Remove or Change"
  run m365 diff "$d/endpoints-2024053100.json"; expect_rc 1; expect_err "this is an endpoint list, not a /changes answer"
  run m365 diff "$d/changes-2024053100.json" "$d/endpoints-2024053100.json"; expect_rc 1; expect_err "this is a /changes answer"
  run m365 diff "$d/bad-json-trailing-comma.json" "$d/endpoints-2024053100.json"; expect_rc 1; expect_err "invalid JSON"
  run m365 diff; expect_rc 2
  run m365 diff a b c; expect_rc 2
  run m365 diff "$d/changes-2024053100.json" --format xml; expect_rc 2
  run m365 diff "$d/changes-2024053100.json" --old-version 1; expect_rc 2 ;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
echo "ok [$case_name]"
