#!/usr/bin/python3
"""docs/policy-reference.md is checked against the loader: every key the loader accepts
(the allowed lists of lib/core/src/policy_loader.cc's check_map calls) and every verify / mode
value is documented there, in backticks.

usage: policy_reference_covers_loader.py SOURCE_DIR
"""
import re
import sys

src = sys.argv[1]
loader = open(f"{src}/lib/core/src/policy_loader.cc").read()
doc = open(f"{src}/docs/policy-reference.md").read()
keys = set()
for m in re.finditer(r'check_map\([^,]+,\s*"[^"]*",\s*\{([^}]*)\}', loader, re.S):
    keys.update(re.findall(r'"([a-z_0-9]+)"', m.group(1)))
values = set(re.findall(r'\{"([a-z]+)", Verify::', loader))
values |= {"enforce", "shadow"}
missing = sorted(k for k in keys | values if f"`{k}" not in doc and f"{k}:" not in doc)
if not keys or not values:
    print("FAIL: could not read the loader's key lists")
    sys.exit(1)
if missing:
    print("FAIL: docs/policy-reference.md does not document:", ", ".join(missing))
    sys.exit(1)
print(f"ok: {len(keys)} keys and {len(values)} values documented")
