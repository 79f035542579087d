#!/usr/bin/env bash
# usage: includes.sh BUILD_DIR
# The core cannot see the headers of the libraries above it: building the probe targets of
# tests/layering/CMakeLists.txt (include_probe.cc with the core's include directories)
# succeeds for a core header and fails, for want of the header, for a header of the
# content checker, the ICAP transaction and the tools.
set -uo pipefail
dir=$1
failures=0
build() { cmake --build "$dir" --target "$1" 2>&1; }

if ! out=$(build layering_probe_core); then
  echo "FAIL: the probe does not compile with a core header (authbypass/policy.h):" >&2
  echo "$out" | tail -20 >&2
  exit 1
fi
for h in revocation_check icap_transaction icap_plan m365 report squid_config explain policy_check \
         customer_hosting; do
  if out=$(build "layering_probe_$h"); then
    echo "FAIL: a core source can include authbypass/$h.h" >&2
    failures=$((failures + 1))
  elif ! grep -q "authbypass/$h.h: No such file or directory" <<<"$out"; then
    echo "FAIL: the probe for authbypass/$h.h failed for another reason:" >&2
    echo "$out" | tail -20 >&2
    failures=$((failures + 1))
  else
    echo "core cannot include authbypass/$h.h"
  fi
done
exit $((failures > 0))
