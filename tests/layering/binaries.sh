#!/usr/bin/env bash
# usage: binaries.sh CLI HELPER MODULE|- HELPER_LINKS CORE_LINKS
# The library layering (docs/architecture.md "Libraries"), as CMake links it and as the
# linker produced it. HELPER_LINKS and CORE_LINKS are the libraries ext_authbypass_acl and
# authbypass::core link directly (their LINK_LIBRARIES, joined by "|"): neither names a
# library above the core, zlib or nlohmann-json. In the binaries:
#   ext_authbypass_acl  core only: no zlib (not NEEDED, no zlib symbol), no JSON library,
#                       no tool (m365, report, squid-config, explain, policy checks,
#                       customer hosting), no content checker, no ICAP transaction;
#   srv_authbypass.so   core, content checker and ICAP transaction: no JSON library, no tool.
# Each pattern is first shown to match the binaries that must contain it (the CLI, the
# module), so that a renamed symbol or a stripped binary fails the test instead of
# passing it. Reads symbol tables (nm -C) and dynamic sections (readelf -d).
set -euo pipefail
cli=$1 helper=$2 module=$3 helper_links=$4 core_links=$5
[[ $module == - ]] && module=

declare -A pattern=(
  [zlib]='[[:space:]](inflate|deflate|gzopen|gzread|gzdopen)[A-Za-z0-9_]*(@.*)?$'
  [json]='nlohmann::'
  [m365]='authbypass::m365::'
  [report]='authbypass::ReportBuilder::'
  [tools]='authbypass::(squid_config|explain|run_policy_tests|lint_policy|customer_hosting_domains)\('
  [revocation]='authbypass::RevocationCheck::'
  [icap_transaction]='authbypass::icap::Transaction::'
)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

symbols() {  # the demangled symbol table, or a failure when there is none
  local out
  out=$(nm -C "$1" 2>&1) || true
  if ! grep -q 'authbypass::' <<<"$out"; then
    fail "$1: no authbypass symbols (stripped?): cannot check the layering"
  fi
  printf '%s\n' "$out"
}
has() { grep -Eq -- "${pattern[$2]}" <<<"$1"; }
needs_libz() { readelf -d "$1" | grep -Eq 'NEEDED.*\[libz\.so'; }

forbidden_link='authbypass(_|::)(tools|revocation|icap)|ZLIB|zlib|libz|nlohmann'
links_ok() {  # NAME LINKS
  local item
  IFS='|' read -ra items <<<"$2"
  ((${#items[@]})) || fail "$1: no link libraries given: cannot check them"
  for item in "${items[@]}"; do
    if grep -Eq -- "$forbidden_link" <<<"$item"; then fail "$1 links $item"; fi
  done
}
links_ok ext_authbypass_acl "$helper_links"
links_ok authbypass::core "$core_links"

cli_syms=$(symbols "$cli")
for c in zlib json m365 report tools revocation; do
  has "$cli_syms" "$c" || fail "control: the CLI ($cli) has no '$c' symbol: pattern /${pattern[$c]}/ is stale"
done
needs_libz "$cli" || fail "control: the CLI ($cli) does not NEED libz: the readelf check is stale"

helper_syms=$(symbols "$helper")
needs_libz "$helper" && fail "ext_authbypass_acl NEEDs libz"
for c in zlib json m365 report tools revocation icap_transaction; do
  if has "$helper_syms" "$c"; then
    fail "ext_authbypass_acl has '$c' symbols:"
    grep -E -- "${pattern[$c]}" <<<"$helper_syms" | head -5 | cut -c1-160 >&2
  fi
done

if [[ -n "$module" ]]; then
  module_syms=$(symbols "$module")
  for c in revocation icap_transaction; do
    has "$module_syms" "$c" || fail "control: the module ($module) has no '$c' symbol: pattern /${pattern[$c]}/ is stale"
  done
  for c in json m365 report tools; do
    if has "$module_syms" "$c"; then
      fail "srv_authbypass.so has '$c' symbols:"
      grep -E -- "${pattern[$c]}" <<<"$module_syms" | head -5 | cut -c1-160 >&2
    fi
  done
else
  echo "srv_authbypass.so not built: only the helper checked"
fi

if ((failures)); then
  echo "$failures layering violation(s) or stale check(s)" >&2
  exit 1
fi
echo "layering holds: helper = core; module without tools or JSON"
