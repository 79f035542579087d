#!/usr/bin/env bash
# Memory checks of the engine and the Squid helper, recorded in docs/reliability.md.
#
# usage: tests/reliability/valgrind.sh [BUILD_DIR] [--quick]
#   BUILD_DIR  a build with the unit tests and ext_authbypass_acl (default build/test)
#   --quick    the short version registered in ctest: 10,000 helper lines under memcheck,
#              no unit tests, no helper_test.py cases, a 200,000-line RSS run
# environment: OUT (logs, default BUILD_DIR/reliability), LINES (helper lines under
#   memcheck, default 100000), BIG_LINES (lines of the RSS run, default 1000000),
#   AUTHBYPASS_DIFF_POLICIES (differential test size under memcheck, default 300)
#
# 1. the unit test binary under memcheck (every test; the differential test smaller);
# 2. the helper under memcheck on LINES generated request lines (tests/bench/
#    helper_gen_lines.py: 20% revocation hosts, 10% .crl elsewhere, 70% browsing) plus bad
#    lines (NUL, bad escapes, invalid UTF-8, a 1 MB line, a line without LF at EOF), with
#    the audit log and stats file on; every line must get an answer;
# 3. tests/helper/helper_test.py, every case, with the helper run under memcheck;
# 4. BIG_LINES lines through the helper (no valgrind), VmRSS sampled: flat after warm-up.
# memcheck: --error-exitcode=1 --leak-check=full (definite and possible leaks are errors).
# Exit 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD
BUILD=build/test
QUICK=0
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) BUILD=$a ;;
  esac
done
UNIT=$BUILD/tests/authbypass_unit_tests
HELPER=$BUILD/helpers/ext_authbypass_acl
POLICY=$SRC/config/policy.yaml
if ! command -v valgrind >/dev/null; then echo "SKIP: valgrind not installed"; exit 77; fi
for f in "$HELPER" "$POLICY"; do
  [ -e "$f" ] || { echo "missing $f (build first: scripts/build $BUILD)"; exit 2; }
done
OUT=${OUT:-$BUILD/reliability}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ $QUICK = 1 ]; then LINES=${LINES:-10000}; BIG_LINES=${BIG_LINES:-200000}
else LINES=${LINES:-100000}; BIG_LINES=${BIG_LINES:-1000000}; fi
VG=(valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --track-origins=yes
    --num-callers=30)
TMP=$(mktemp -d /tmp/ab-valgrind-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
status=0
result() {  # name rc seconds detail
  local s=PASS; [ "$2" = 0 ] || { s=FAIL; status=1; }
  printf '%-28s %s  %4ss  %s\n' "$1" "$s" "$3" "$4" | tee -a "$OUT/summary.txt"
}
vg_summary() {  # log file -> "N errors, definitely lost X bytes ..."
  local e d p
  e=$(grep -h "ERROR SUMMARY" "$@" 2>/dev/null | awk '{s+=$4} END {print s+0}')
  d=$(grep -h "definitely lost:" "$@" 2>/dev/null | awk '{gsub(",","",$4); s+=$4} END {print s+0}')
  p=$(grep -h "possibly lost:" "$@" 2>/dev/null | awk '{gsub(",","",$4); s+=$4} END {print s+0}')
  echo "memcheck: $e errors, definitely lost $d B, possibly lost $p B"
}
: > "$OUT/summary.txt"
echo "valgrind: $(valgrind --version); build $BUILD; logs in $OUT" | tee -a "$OUT/summary.txt"

# ---- 1. unit tests ----------------------------------------------------------------------
if [ $QUICK = 0 ]; then
  t0=$(date +%s)
  AUTHBYPASS_DIFF_POLICIES=${AUTHBYPASS_DIFF_POLICIES:-300} AUTHBYPASS_DIFF_PATHS=10000 \
    "${VG[@]}" --log-file="$OUT/unit.vg.log" "$UNIT" --gtest_brief=1 > "$OUT/unit.out" 2>&1
  rc=$?
  tests=$(grep -Eo '[0-9]+ tests? from [0-9]+ test suites? ran' "$OUT/unit.out" | tail -1)
  result "unit tests (memcheck)" $rc $(( $(date +%s) - t0 )) "$tests; $(vg_summary "$OUT/unit.vg.log")"
fi

# ---- 2. helper on generated lines -------------------------------------------------------
t0=$(date +%s)
OUT=$TMP /usr/bin/python3 "$SRC/tests/bench/helper_gen_lines.py" "$LINES" >/dev/null
/usr/bin/python3 - "$TMP/authbypass.txt" <<'PY'
import sys
bad = [b"1 10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2Fx\x00.crl ua -",
       b"2 10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2F%C3%28.crl ua -",
       b"3 10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2F%zz.crl ua -",
       b"4 10.1.2.3 GET", b"", b"\xff\xfe\xfd", b"5 not-an-ip GET http%3A%2F%2Fa%2F ua -",
       b"6 10.1.2.3 GET http%3A%2F%2F3221225991%2Fa.crl ua -",
       b"7 10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2F" + b"a" * (1 << 20) + b".crl ua -",
       b"8 10.1.2.3 CONNECT login.microsoftonline.com%3A443 MSOIDCRL -"]
with open(sys.argv[1], "ab") as f:
    for i in range(3):
        f.write(b"\n".join(bad) + b"\n")
    f.write(b"9 10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2Fpca3.crl Microsoft-CryptoAPI%2F6.1 -")
PY
in_lines=$(( $(wc -l < "$TMP/authbypass.txt") + 1 ))  # the last line has no LF
"${VG[@]}" --log-file="$OUT/helper_lines.vg.log" "$HELPER" --policy "$POLICY" \
  --audit-log "$TMP/audit.log" --stats-file "$TMP/stats.json" \
  < "$TMP/authbypass.txt" > "$TMP/answers.txt" 2> "$OUT/helper_lines.stderr"
rc=$?
answers=$(wc -l < "$TMP/answers.txt")
oks=$(grep -c ' OK ' "$TMP/answers.txt" || true)
[ "$answers" = "$in_lines" ] || { echo "helper: $answers answers for $in_lines lines"; rc=1; }
result "helper $LINES lines (memcheck)" $rc $(( $(date +%s) - t0 )) \
  "$in_lines lines, $answers answers ($oks OK), $(wc -l < "$TMP/audit.log") audit lines; $(vg_summary "$OUT/helper_lines.vg.log")"

# ---- 3. helper_test.py cases, helper under memcheck ---------------------------------------
if [ $QUICK = 0 ]; then
  cat > "$TMP/helper-vg" <<SH
#!/bin/sh
exec valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --num-callers=30 \
  --log-file=$OUT/helper_test.%p.vg.log $(cd "$(dirname "$HELPER")" && pwd)/$(basename "$HELPER") "\$@"
SH
  chmod +x "$TMP/helper-vg"
  # helper_test.py finds the CLI next to the helper (stats case)
  ln -sf "$(cd "$(dirname "$HELPER")" && pwd)/authbypass" "$TMP/authbypass"
  rm -f "$OUT"/helper_test.*.vg.log
  cases=$(grep -o 'foreach(case [^)]*' tests/helper/CMakeLists.txt | sed 's/foreach(case //')
  for c in $cases; do
    t0=$(date +%s)
    /usr/bin/python3 tests/helper/helper_test.py "$c" "$TMP/helper-vg" "$POLICY" \
      > "$OUT/helper_test.$c.out" 2>&1
    rc=$?
    note=$(tail -1 "$OUT/helper_test.$c.out" | cut -c1-160)
    if [ $rc != 0 ] && grep -q "RSS [0-9]* kB after a 1 MB line" "$OUT/helper_test.$c.out"; then
      # the case's RSS bound (64 MB) measures valgrind itself here; memcheck's log decides
      rc=0; note="$note (RSS bound not applicable under valgrind: the case stops there)"
    fi
    result "helper_test $c (memcheck)" $rc $(( $(date +%s) - t0 )) "$note"
  done
  logs=("$OUT"/helper_test.*.vg.log)
  # a helper the test SIGKILLs on purpose (kill() at the end of a case) leaves no summary
  bad=$(grep -l "ERROR SUMMARY: [1-9]" "${logs[@]}" | wc -l)
  nosum=$(grep -L "ERROR SUMMARY" "${logs[@]}" | wc -l)
  result "helper_test memcheck logs" $([ "$bad" = 0 ] && echo 0 || echo 1) 0 \
    "${#logs[@]} helper processes ($nosum killed by the test, no summary), $bad with errors; $(vg_summary "${logs[@]}")"
fi

# ---- 4. RSS over BIG_LINES lines ----------------------------------------------------------
t0=$(date +%s)
OUT=$TMP /usr/bin/python3 "$SRC/tests/bench/helper_gen_lines.py" "$BIG_LINES" >/dev/null
/usr/bin/python3 tests/reliability/helper_rss.py "$HELPER" "$POLICY" "$TMP/authbypass.txt" \
  --samples 20 --max-growth-kb 1024 --json "$OUT/rss.json" > "$OUT/rss.out" 2>&1
rc=$?
cat "$OUT/rss.out"
result "helper $BIG_LINES lines (RSS)" $rc $(( $(date +%s) - t0 )) "$(grep -o 'growth [0-9-]* kB' "$OUT/rss.out"), $(head -1 "$OUT/rss.out" | grep -o '([0-9,]* lines/s)')"

echo "summary: $OUT/summary.txt"
exit $status
