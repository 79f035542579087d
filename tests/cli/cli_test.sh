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
verify_*)
  # Bodies made here with openssl: a CA, its CRL (DER and PEM), a certs-only bundle, and
  # impostors (a CMS-signed document, a program).
  (cd "$tmp" && set -e
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
     -out ca.pem -subj /CN=CA -days 30 2>/dev/null
   printf '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=n\ndefault_md=sha256\ndefault_crl_days=7\ncertificate=ca.pem\nprivate_key=ca.key\n' >ca.cnf
   : >index.txt; echo 01 >n
   openssl ca -config ca.cnf -gencrl -out crl.pem 2>/dev/null
   openssl crl -in crl.pem -outform DER -out crl.der
   openssl crl2pkcs7 -nocrl -certfile ca.pem -outform DER -out ca.p7c
   printf 'MZ\220\0 program' >prog.exe
   openssl cms -sign -binary -nodetach -in prog.exe -signer ca.pem -inkey ca.key -outform DER \
     -out signed.p7m
   head -c 3000 /dev/urandom >>crl.pem.zip; cat crl.pem crl.pem.zip >glued.pem) \
    >"$tmp/out" 2>"$tmp/err" || fail "openssl fixtures"
  cd "$tmp"
  case $case_name in
  verify_genuine)
    run verify crl.der crl.pem ca.pem ca.p7c; expect_rc 0
    expect_out "crl.der: verified crl: genuine crl"; expect_out "crl.pem: verified crl: genuine crl"
    expect_out "ca.pem: verified cert: genuine cert"; expect_out "ca.p7c: verified pkcs7: genuine pkcs7"
    for c in 1 7 4096; do
      run verify --chunk $c --verify crl --content-type application/pkix-crl crl.der; expect_rc 0
    done ;;
  verify_blocked)
    run verify crl.der signed.p7m prog.exe; expect_rc 1
    expect_out "crl.der: verified crl: genuine crl"
    expect_out "signed.p7m: blocked -: not crl/ocsp/cert/pkcs7: SET at depth 3 is not empty (digestAlgorithms"
    expect_out "prog.exe: blocked -: not revocation data: a Windows executable (MZ)"
    run verify --verify cert crl.der; expect_rc 1; expect_out "crl.der: blocked -: not cert/pkcs7"
    run verify --content-type text/html crl.der; expect_rc 1
    expect_out "blocked -: Content-Type 'text/html' is not revocation data" ;;
  verify_preview)
    # DER whose end is Content-Length: identified from the preview, the rest unchecked.
    run verify --preview 1024 crl.der; expect_rc 0
    # (a CRL of a few hundred bytes fits the preview: checked whole)
    expect_out "crl.der: verified crl: genuine crl"
    run verify --preview 100 crl.der; expect_rc 0; expect_out "crl.der: verified crl: identified crl (preview)"
    # PEM is never identified from a preview: a PEM CRL glued to junk is checked in full.
    run verify --preview 16 --content-type application/octet-stream glued.pem; expect_rc 1
    expect_out "glued.pem: blocked -: bytes after the PEM END line"
    run verify --preview 16 ca.p7c; expect_rc 0; expect_out "ca.p7c: verified pkcs7: genuine pkcs7" ;;
  verify_usage)
    run verify; expect_rc 2; expect_err "verify needs at least one FILE"
    run verify --verify bogus crl.der; expect_rc 2; expect_err "bad --verify 'bogus' (give a rule's verify"
    run verify --preview x crl.der; expect_rc 2; expect_err "--preview needs the preview size in bytes"
    run verify --chunk 0 crl.der; expect_rc 2; expect_err "--chunk needs a size in bytes"
    run verify --request --preview 5 crl.der; expect_rc 2; expect_err "--request checks an OCSP POST body"
    run verify missing.crl crl.der; expect_rc 2; expect_err "cannot read missing.crl"
    expect_out "crl.der: verified crl: genuine crl"
    run --help; expect_out "verify FILE... [--content-type T] [--verify KIND] [--preview N]" ;;
  *) fail "no such verify case" ;;
  esac ;;
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
  expect_out "$tmp/p.yaml:7:5: warning: rule 'signin': allows CONNECT to port 443"
  grep -q "'signin': hosts entry" "$tmp/out" && fail "a tunnel's wildcard warned as if it had a path"
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
  expect_out "http_access allow authbypass_candidates !authbypass_range authbypass"
  expect_out "cache deny authbypass_candidate_urls"; expect_out "send_hit deny authbypass_candidate_urls"
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
  expect_out "wrote $tmp/m365.yaml: 5 rules (m365-84-ocsp, m365-84, m365-125-ocsp, m365-125, m365-125-ocsp-post) from endpoint list version 2024053100"
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
  expect_rc 1; expect_err "set 84 is taken as a revocation set"; expect_err "revocation sets by their hosts: 201 (Common: 2 of 2 named hosts"
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
m365_connect_narrow)
  # --connect: required sets only, never a customer-hosting domain unless named; what `check`
  # then says of the documented example.
  d=$src/tests/data/m365
  run m365 import "$d/endpoints-2024053100.json" --version-file "$d/version.json" \
    --service-areas Skype,Common --connect --policy-out "$tmp/sc.yaml"
  expect_rc 0
  expect_out "wrote $tmp/sc.yaml: 10 rules (m365-12-connect, m365-56-connect, m365-59-connect, m365-84-ocsp, m365-84, m365-84-connect, m365-125-ocsp, m365-125, m365-125-ocsp-post, m365-125-connect)"
  expect_err "authbypass: note: set 27: 'mlccdn.blob.core.windows.net' not imported: it is in the customer-hosting domain .core.windows.net (Azure Storage accounts: blobs, files, tables, queues and static web sites), where any customer of that service can host what it likes; --allow-customer-domain mlccdn.blob.core.windows.net imports it all the same"
  expect_err "authbypass: note: set 59: '.msecnd.net' not imported: it covers the customer-hosting domain .vo.msecnd.net (Azure CDN (classic) endpoints)"
  for h in mlccdn.blob.core.windows.net x.streaming.mediaservices.windows.net az1.vo.msecnd.net; do
    run explain "$tmp/sc.yaml" --method CONNECT --url "$h:443"; expect_rc 0; expect_out "decision: AUTHENTICATE"
  done
  # 5 tunnel rules, one warning each; the other 14 name set 125's CA wildcards (GET and POST).
  run check "$tmp/sc.yaml"; expect_rc 0; expect_out "OK: policy valid, 19 warnings"
  [ "$(grep -c "' covers " "$tmp/out")" = 14 ] || fail "expected 14 wildcard warnings"
  expect_out "warning: rule 'm365-12-connect': allows CONNECT to port 443: an opaque tunnel whose content cannot be checked"
  grep -q "allows port 443" "$tmp/out" && fail "a second warning per tunnel rule"
  # Optional set 27 needs --ids, its storage host --allow-customer-domain; check names it.
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --service-areas Skype --connect \
    --allow-customer-domain mlccdn.blob.core.windows.net --policy-out "$tmp/x.yaml"
  expect_rc 0; expect_err "authbypass: note: set 27 (Skype, optional): no CONNECT rule: --connect takes required sets only; name the set with --ids to add it"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --ids 27 --connect \
    --allow-customer-domain mlccdn.blob.core.windows.net --allow-customer-domain .azurewebsites.net --policy-out "$tmp/27.yaml"
  expect_rc 0; expect_out "1 rule (m365-27-connect)"
  expect_err "authbypass: note: --allow-customer-domain .azurewebsites.net: no host of the chosen sets is under it"
  run check "$tmp/27.yaml"; expect_rc 0
  expect_out "warning: rule 'm365-27-connect': CONNECT to 'mlccdn.blob.core.windows.net', in the customer-hosting domain .core.windows.net (Azure Storage accounts: blobs, files, tables, queues and static web sites): any customer of that service can host there, so the tunnel reaches servers anyone can run"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --ids 27 --connect \
    --allow-customer-domain crl.example.com --policy-out "$tmp/x.yaml"
  expect_rc 1; expect_err "authbypass: --allow-customer-domain 'crl.example.com' is in no customer-hosting domain: nothing to allow" ;;
m365_ocsp_post)
  # OCSP responders under the revocation set's wildcards take POST (verify: ocsp).
  d=$src/tests/data/m365
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$tmp/m365.yaml"; expect_rc 0
  run explain "$tmp/m365.yaml" --method POST --url http://sr.symcd.com/
  expect_rc 0; expect_out "decision: BYPASS (no proxy authentication) by rule 'm365-125-ocsp-post'"; expect_out "verify ocsp"
  run explain "$tmp/m365.yaml" --method POST --url http://ocsp.entrust.net/
  expect_rc 0; expect_out "by rule 'm365-125-ocsp-post'"
  run explain "$tmp/m365.yaml" --url http://sr.symcd.com/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ
  expect_rc 0; expect_out "by rule 'm365-125'"; expect_out "verify revocation"
  run explain "$tmp/m365.yaml" --method POST --url http://crl.globalsign.com/
  expect_rc 0; expect_out "decision: AUTHENTICATE" ;;
m365_instance)
  # A USGovDoD list: its instance and version file are checked, its revocation sets are
  # named by their content, and the Office client's hosts are never bypassed over HTTP.
  d=$src/tests/data/m365
  run m365 import "$d/endpoints-usgovdod.json" --version-file "$d/version.json" --policy-out "$tmp/x.yaml"
  expect_rc 1
  expect_err "authbypass: $d/endpoints-usgovdod.json: this endpoint list is not one of the Worldwide instance: it looks like a US Government list (12 of its hosts are in US Government domains, e.g. outlook-dod.office365.us); give its instance with --instance USGovDoD or USGovGCCHigh and that instance's /version answer"
  run m365 import "$d/endpoints-usgovdod.json" --instance USGovDoD --version-file "$d/version.json" --policy-out "$tmp/x.yaml"
  expect_rc 1
  expect_err "authbypass: $d/version.json: the /version answer is for instance Worldwide, but the endpoint list is USGovDoD's (--instance); fetch https://endpoints.office.com/version/USGovDoD?clientrequestid=..."
  run m365 import "$d/endpoints-usgovdod.json" --instance USGovDoD --version-file "$d/endpoints-usgovdod.json" --policy-out "$tmp/x.yaml"
  expect_rc 1; expect_err "endpoints-usgovdod.json: an endpoint list, not a /version answer"
  run m365 import "$d/endpoints-usgovdod.json" --instance USGovDoD --version-file "$d/version-usgovdod.json" --policy-out "$tmp/x.yaml"
  expect_rc 1
  expect_err "the revocation sets of the USGovDoD list are not known (84 and 125 are the Worldwide list's): name them with --revocation-ids after reading the list; revocation sets by their hosts: 20 (Common: 14 of 17 named hosts are CRL/OCSP/CA-certificate hosts (cacerts.digicert.com, crl.globalsign.com, crl.globalsign.net, ...), beside apps.identrust.com, cert.int-x3.letsencrypt.org, secure.globalsign.com); not revocation sets (never bypassed over plain HTTP), though they list such hosts: 17 (Common: 1 of 14 named hosts is a CRL/OCSP/CA-certificate host (crl.microsoft.com), beside activation.sls.microsoft.com, go.microsoft.com, insertmedia.bing.office.net, ...)"
  run m365 import "$d/endpoints-usgovdod.json" --instance USGovDoD --version-file "$d/version-usgovdod.json" --revocation-ids 17 --policy-out "$tmp/x.yaml"
  expect_rc 1; expect_err "set 17 is taken as a revocation set (--revocation-ids 17) but is not one by its hosts (1 of 14 named hosts"
  [ -e "$tmp/x.yaml" ] && fail "a file was written on failure"
  run m365 import "$d/endpoints-usgovdod.json" --instance usgovdod --version-file "$d/version-all.json" \
    --revocation-ids 20 --service-areas Common --connect --policy-out "$tmp/dod.yaml"
  expect_rc 0; expect_out "from endpoint list version 2024052800"
  expect_out "(m365-17-connect, m365-20-ocsp, m365-20, m365-20-ocsp-post, m365-20-connect, m365-22-connect)"
  expect_err "note: set 17 (Common) lists CRL/OCSP/CA-certificate hosts but is not a revocation set"
  grep -q '^#   instance USGovDoD, endpoint sets 17, 20, 22, 27 (revocation sets: 20)$' "$tmp/dod.yaml" || fail "no instance in the header"
  for u in http://go.microsoft.com/fwlink/ http://officecdn.microsoft.com/pr/x.cab http://activation.sls.microsoft.com/; do
    run explain "$tmp/dod.yaml" --url "$u"; expect_rc 0; expect_out "decision: AUTHENTICATE"
  done
  run explain "$tmp/dod.yaml" --method POST --url http://sr.symcd.com/; expect_rc 0; expect_out "by rule 'm365-20-ocsp-post'"
  # 3 tunnel rules; 16 warnings name set 20's CA wildcards (GET and POST).
  run check "$tmp/dod.yaml"; expect_rc 0; expect_out "OK: policy valid, 19 warnings"
  run m365 import "$d/endpoints-2024053100.json" --instance China --version-file "$d/version-all.json" --policy-out "$tmp/x.yaml"
  expect_rc 1; expect_err "this endpoint list is not one of the China instance: it looks like a Worldwide list"
  run m365 ips "$d/endpoints-usgovdod.json" --version-file "$d/version.json"
  expect_rc 1; expect_err "this endpoint list is not one of the Worldwide instance"
  run m365 ips "$d/endpoints-usgovdod.json" --instance USGovDoD --version-file "$d/version-usgovdod.json"
  expect_rc 0; expect_out "52.127.64.0/21"
  run m365 import "$d/endpoints-usgovdod.json" --instance Germany --version 1 --policy-out "$tmp/x.yaml"
  expect_rc 2; expect_err "unknown --instance 'Germany' (Worldwide, USGovDoD, USGovGCCHigh or China)"
  printf '2024053100\n' >"$tmp/v.txt"
  run m365 import "$d/endpoints-2024053100.json" --version-file "$tmp/v.txt" --policy-out "$tmp/x.yaml"
  expect_rc 1; expect_err "a bare version, not the web service's /version answer: give it with --version 2024053100" ;;
output_regular)
  # A regular file is replaced by rename (another inode), keeping its mode; a new one gets
  # the umask's mode; nothing is left beside it.
  umask 022; d=$src/tests/data/m365; mkdir "$tmp/etc"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$tmp/etc/new.yaml"
  expect_rc 0; [ "$(stat -c %a "$tmp/etc/new.yaml")" = 644 ] || fail "new file mode $(stat -c %a "$tmp/etc/new.yaml")"
  printf 'old\n' >"$tmp/etc/m365.yaml"; chmod 0600 "$tmp/etc/m365.yaml"; ino=$(stat -c %i "$tmp/etc/m365.yaml")
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$tmp/etc/m365.yaml"
  expect_rc 0; grep -q '^version: 1$' "$tmp/etc/m365.yaml" || fail "not replaced"
  [ "$(stat -c %a "$tmp/etc/m365.yaml")" = 600 ] || fail "mode not kept: $(stat -c %a "$tmp/etc/m365.yaml")"
  [ "$(stat -c %i "$tmp/etc/m365.yaml")" != "$ino" ] || fail "rewritten in place, not renamed over"
  run m365 ips "$d/endpoints-2024053100.json" --out "$tmp/etc/m365.yaml"; expect_rc 0
  [ "$(stat -c %a "$tmp/etc/m365.yaml")" = 600 ] || fail "ips --out: mode not kept"
  [ "$(ls -A "$tmp/etc" | tr '\n' ' ')" = "m365.yaml new.yaml " ] || fail "left behind: $(ls -A "$tmp/etc")"
  if command -v strace >/dev/null; then  # durable: the file synced before the rename, the directory after
    strace -o "$tmp/trace" -e trace=openat,fsync,rename "$ab" m365 ips "$d/endpoints-2024053100.json" --out "$tmp/etc/m365.yaml" >/dev/null 2>&1 \
      || fail "under strace: exit $?"
    order=$(sed -nE 's/^openat\(AT_FDCWD, "[^"]*\/(\.m365\.yaml\.[^"]*)".* = ([0-9]+)$/open-tmp fd\2/p; s/^openat\(AT_FDCWD, "[^"]*\/etc", .*O_DIRECTORY.* = ([0-9]+)$/open-dir fd\1/p; s/^fsync\(([0-9]+)\).*= 0$/fsync fd\1/p; s/^rename\(.*\) = 0$/rename/p' "$tmp/trace" | tr '\n' ' ')
    re='^open-tmp fd([0-9]+) fsync fd([0-9]+) rename open-dir fd([0-9]+) fsync fd([0-9]+) $'
    [[ $order =~ $re ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] \
      && [ "${BASH_REMATCH[3]}" = "${BASH_REMATCH[4]}" ] || fail "not synced as promised: $order"
  fi ;;
output_symlink)
  # Config-managed links stay links: the file they point to is replaced, in its own
  # directory; a dangling link gets its target created.
  d=$src/tests/data/m365; mkdir "$tmp/etc" "$tmp/store"
  printf 'old\n' >"$tmp/store/m365.yaml"; ln -s ../store/m365.yaml "$tmp/etc/m365.yaml"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$tmp/etc/m365.yaml"
  expect_rc 0; [ -L "$tmp/etc/m365.yaml" ] || fail "m365 import replaced the link"
  [ "$(readlink "$tmp/etc/m365.yaml")" = ../store/m365.yaml ] || fail "link changed"
  grep -q '^version: 1$' "$tmp/store/m365.yaml" || fail "the link's target was not written"
  ln -s ../store/ips.nft "$tmp/etc/ips.nft"
  run m365 ips "$d/endpoints-2024053100.json" --format nft --out "$tmp/etc/ips.nft"; expect_rc 0
  [ -L "$tmp/etc/ips.nft" ] || fail "m365 ips replaced a dangling link"
  grep -q '^set m365_v4 {$' "$tmp/store/ips.nft" || fail "the dangling link's target was not created"
  run m365 ips "$d/endpoints-2024053100.json" --out "$tmp/etc/ips.nft"; expect_rc 0
  [ -L "$tmp/etc/ips.nft" ] || fail "m365 ips --out replaced the link"
  [ "$(ls -A "$tmp/etc" | tr '\n' ' ')" = "ips.nft m365.yaml " ] || fail "left behind: $(ls -A "$tmp/etc")"
  [ "$(ls -A "$tmp/store" | tr '\n' ' ')" = "ips.nft m365.yaml " ] || fail "left behind: $(ls -A "$tmp/store")" ;;
output_fifo)
  # A FIFO is written in place: the reader gets the policy and the FIFO stays a FIFO.
  # Without a reader: an error at once, never a wait, never a regular file in its place.
  d=$src/tests/data/m365; mkfifo "$tmp/fifo"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$tmp/fifo"
  expect_rc 1; expect_err "$tmp/fifo is a FIFO with no reader: nothing written (start the reader first)"
  [ -p "$tmp/fifo" ] || fail "the FIFO was replaced"
  timeout 20 cat "$tmp/fifo" >"$tmp/got" & reader=$!
  for _ in $(seq 100); do  # until the reader has opened its end
    run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$tmp/fifo"
    grep -q "no reader" "$tmp/err" || break; sleep 0.1
  done
  expect_rc 0; [ -p "$tmp/fifo" ] || { kill "$reader" 2>/dev/null; fail "the FIFO was replaced"; }
  wait "$reader"; grep -q '^version: 1$' "$tmp/got" || fail "the reader got: $(head -c 200 "$tmp/got")" ;;
output_refused)
  d=$src/tests/data/m365; mkdir "$tmp/dir"
  run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$tmp/dir"
  expect_rc 1; expect_err "$tmp/dir is a directory: nothing written (give the name of a file"
  run m365 ips "$d/endpoints-2024053100.json" --out "$tmp/dir"; expect_rc 1; expect_err "is a directory"
  run secret --out "$tmp/dir" --force; expect_rc 1; expect_err "is a directory"
  [ -d "$tmp/dir" ] && [ -z "$(ls -A "$tmp/dir")" ] || fail "the directory changed" ;;
output_secret)
  # secret --out: 0640 whatever the umask, never over a file without --force, through a
  # link the target is replaced, and --force keeps the old group unless --group says.
  umask 077; mkdir "$tmp/etc" "$tmp/store"
  run secret --out "$tmp/etc/s"; expect_rc 0; [ "$(stat -c %a "$tmp/etc/s")" = 640 ] || fail "mode"
  grep -qE '^[0-9a-f]{64}$' "$tmp/etc/s" || fail "content"; cp "$tmp/etc/s" "$tmp/first"
  run secret --out "$tmp/etc/s"; expect_rc 1; expect_err "$tmp/etc/s exists: not replaced (--force replaces it"
  cmp -s "$tmp/etc/s" "$tmp/first" || fail "replaced without --force"
  mv "$tmp/etc/s" "$tmp/store/s"; ln -s ../store/s "$tmp/etc/s"
  run secret --out "$tmp/etc/s"; expect_rc 1; expect_err "exists: not replaced"
  run secret --out "$tmp/etc/s" --force; expect_rc 0
  [ -L "$tmp/etc/s" ] || fail "secret --force replaced the link"
  cmp -s "$tmp/store/s" "$tmp/first" && fail "the target was not replaced"
  [ "$(stat -c %a "$tmp/store/s")" = 640 ] || fail "target mode $(stat -c %a "$tmp/store/s")"
  if [ "$(id -u)" = 0 ]; then
    chgrp nogroup "$tmp/store/s"
    run secret --out "$tmp/etc/s" --force; expect_rc 0
    [ "$(stat -c %G "$tmp/store/s")" = nogroup ] || fail "--force lost the group: $(stat -c %G "$tmp/store/s")"
    run secret --out "$tmp/etc/s" --force --group root; expect_rc 0
    [ "$(stat -c %G "$tmp/store/s")" = root ] || fail "--group not applied"
  fi
  run secret --out -; expect_rc 0; grep -qE '^[0-9a-f]{64}$' "$tmp/out" || fail "--out - is stdout"
  [ "$(ls -A "$tmp/etc" | tr '\n' ' ')" = "s " ] || fail "left behind: $(ls -A "$tmp/etc")" ;;
output_devices)
  # As root: character devices are written in place, never renamed over. First a private
  # null device (mknod in this test's directory): a regression breaks only that one, and
  # the machine's /dev/null is not tried. Then /dev/null itself, checked (and put back if
  # ever broken) afterwards.
  [ "$(id -u)" = 0 ] || { echo "SKIP [$case_name]: needs root (mknod, /dev/null)"; exit 77; }
  mknod -m 666 "$tmp/null" c 1 3 2>/dev/null && printf x >"$tmp/null" 2>/dev/null \
    || { echo "SKIP [$case_name]: cannot make or use a device node in $tmp"; exit 77; }
  d=$src/tests/data/m365
  writes() {  # every output path of the CLI, to $1
    run m365 import "$d/endpoints-2024053100.json" --version 2024053100 --policy-out "$1"; expect_rc 0
    run m365 ips "$d/endpoints-2024053100.json" --out "$1"; expect_rc 0
    run secret --out "$1"; expect_rc 0
    run secret --out "$1" --force --group nogroup; expect_rc 0
  }
  ino=$(stat -c %i "$tmp/null")
  writes "$tmp/null"
  [ -c "$tmp/null" ] && [ "$(stat -c '%i %a %t:%T %G' "$tmp/null")" = "$ino 666 1:3 root" ] \
    || fail "the private null device was replaced or changed ($(stat -c '%F %i %a %G' "$tmp/null")): /dev/null not tried"
  ln -s null "$tmp/link"; writes "$tmp/link"; [ -L "$tmp/link" ] && [ -c "$tmp/null" ] || fail "through a link"
  [ "$(ls -A "$tmp" | grep -c '^\.null\.')" = 0 ] || fail "temporary files left in $tmp"
  before=$(stat -c '%F %i %a %t:%T %U:%G' /dev/null)
  restore_dev_null() {  # also on any early exit below
    if [ ! -c /dev/null ] || [ "$(stat -c %t:%T /dev/null)" != 1:3 ]; then
      echo "FAIL [$case_name]: /dev/null was replaced ($(stat -c '%F' /dev/null)): recreating it"
      rm -f /dev/null; mknod -m 666 /dev/null c 1 3; return 1
    fi
  }
  trap 'restore_dev_null; rm -rf "$tmp"' EXIT
  writes /dev/null
  after=$(stat -c '%F %i %a %t:%T %U:%G' /dev/null)
  restore_dev_null || fail "/dev/null was replaced"
  [ "$after" = "$before" ] || fail "/dev/null changed: $before -> $after"
  [ -z "$(ls -A /dev | grep '^\.null\.')" ] || fail "temporary files left in /dev: $(ls -A /dev | grep '^\.null\.')" ;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
echo "ok [$case_name]"
