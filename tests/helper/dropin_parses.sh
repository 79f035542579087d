#!/usr/bin/env bash
# usage: dropin_parses.sh SOURCE_DIR HELPER
# The shipped drop-in config/squid/authbypass.conf, uncommented, must pass `squid -k parse`
# in a minimal squid.conf with authentication after it.
set -u
src=$1 helper=$2
command -v squid >/dev/null || { echo "squid not installed"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed -e 's/^#\([a-z]\)/\1/' \
    -e "s|/usr/lib/squid/ext_authbypass_acl|$helper|; s|/etc/authbypass/policy.yaml|$src/config/policy.yaml|" \
    -e "s|/var/log/authbypass/helper.log|$tmp/helper.log|; s|daemon:/var/log/squid/access.log|$tmp/access.log|" \
    "$src/config/squid/authbypass.conf" >"$tmp/authbypass.conf"
grep -q '^external_acl_type authbypass' "$tmp/authbypass.conf" || { echo "FAIL: nothing uncommented"; exit 1; }
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
: >"$tmp/htpasswd"
out=$(squid -k parse -f "$tmp/squid.conf" 2>&1); rc=$?
if [ $rc -ne 0 ] || grep -qiE 'FATAL|ERROR|WARNING' <<<"$out"; then
  echo "FAIL: squid -k parse (rc $rc):"; echo "$out"; exit 1
fi
echo "ok: the drop-in parses"
