#!/usr/bin/python3
"""The shipped drop-in's hand-kept prefilter (config/squid/authbypass.conf, section 2) must
cover every host `authbypass squid-config` derives from the shipped policy, and its path
prefilter every path suffix: a host missing there would never reach the helper (its
requests would be authenticated, Windows' revocation fetches would fail).

usage: dropin_covers_policy.py SOURCE_DIR AUTHBYPASS_CLI
"""
import re
import subprocess
import sys

src, cli = sys.argv[1], sys.argv[2]
gen = subprocess.run([cli, "squid-config", f"{src}/config/policy.yaml", "--no-icap"],
                     capture_output=True, text=True, check=True).stdout
dropin = open(f"{src}/config/squid/authbypass.conf").read()


def values(text, pattern):
    out = set()
    for line in text.splitlines():
        m = re.match(pattern, line)
        if m:
            out.update(m.group(1).split())
    return out


want = values(gen, r"^acl ab_\S+ dstdomain(?: -n)? (.*)$")
have = values(dropin, r"^#acl authbypass_hosts dstdomain(?: -n)? (.*)$")


def covered(name):
    if name in have:
        return True
    labels = name.lstrip(".").split(".")
    return any("." + ".".join(labels[i:]) in have for i in range(len(labels)))


missing = sorted(n for n in want if not covered(n))
# Path patterns of rules without hosts must be in the drop-in's path prefilter (rules
# with hosts are already candidates through their hosts).
with_hosts = set(re.findall(r"^acl ab_(\S+)_hosts ", gen, re.M))
paths_gen = set()
for rule, pats in re.findall(r"^acl ab_(\S+)_path urlpath_regex -i (.*)$", gen, re.M):
    if rule not in with_hosts:
        paths_gen.update(pats.split())
paths_have = values(dropin, r"^#acl authbypass_paths urlpath_regex -i (.*)$")
missing_paths = sorted(paths_gen - paths_have)
if missing or missing_paths:
    print("FAIL: the drop-in's prefilter misses", missing, missing_paths)
    print("update config/squid/authbypass.conf section 2 (see `authbypass squid-config`)")
    sys.exit(1)
print(f"ok: the drop-in covers all {len(want)} host entries of the shipped policy")
