#!/usr/bin/env bash
# usage: squid_config_parses.sh SOURCE_DIR AUTHBYPASS_CLI HELPER
# `authbypass squid-config` on the shipped policy (with and without ICAP) must pass
# `squid -k parse` without errors or warnings in a minimal squid.conf.
set -u
src=$1 cli=$2 helper=$3
command -v squid >/dev/null || { echo "squid not installed"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
: >"$tmp/htpasswd"
for variant in icap no-icap; do
  extra=(); [ "$variant" = no-icap ] && extra=(--no-icap)
  "$cli" squid-config "$src/config/policy.yaml" --helper "$helper" \
    --policy-path "$src/config/policy.yaml" --audit-log "$tmp/helper.log" "${extra[@]}" \
    >"$tmp/authbypass.conf" 2>"$tmp/warnings" || { echo "FAIL: squid-config exited $?"; exit 1; }
  cat >"$tmp/squid.conf" <<CONF
http_port 127.0.0.1:3
pid_filename $tmp/squid.pid
cache_log $tmp/cache.log
cache_store_log none
netdb_filename none
auth_param basic program /usr/lib/squid/basic_ncsa_auth $tmp/htpasswd
include $tmp/authbypass.conf
acl authenticated proxy_auth REQUIRED
http_access allow authenticated
http_access deny all
CONF
  out=$(squid -k parse -f "$tmp/squid.conf" 2>&1); rc=$?
  if [ $rc -ne 0 ] || grep -qiE 'FATAL|ERROR|WARNING' <<<"$out"; then
    echo "FAIL ($variant): squid -k parse (rc $rc):"; grep -iE 'FATAL|ERROR|WARNING' <<<"$out"; exit 1
  fi
  grep -q '^http_access allow authbypass_candidates !authbypass_range authbypass authbypass_noted$' "$tmp/authbypass.conf" ||
    { echo "FAIL: no http_access line"; exit 1; }
done
echo "ok: squid-config output parses (with and without ICAP)"
