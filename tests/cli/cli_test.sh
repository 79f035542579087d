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
  expect_out "the query and ;params are never matched" ;;
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
*) echo "unknown case $case_name"; exit 2 ;;
esac
echo "ok [$case_name]"
