#!/usr/bin/env python3
"""Deterministic generator of Squid helper request lines for benchmarking.

Copied from the shared benchmark reference material (bench-reference/gen_lines.py) so
that tests/bench/helper_throughput.sh is self-contained; only this docstring differs,
the output is byte-for-byte the reference's (seed 42), and SEED (default 42) is read from
the environment so that scripts/build-pgo can train on other lines than the benchmark's.

Usage: OUT=DIR [SEED=N] helper_gen_lines.py [N]   (N lines, default 1,000,000)
Writes, in $OUT (default .):
  revocation_hosts.txt   56 CA revocation (CRL/OCSP/AIA) host names
  urlrewrite.txt         squidGuard url_rewrite format:  URL ip/fqdn ident method
  authbypass.txt         ext_authbypass_acl's default external_acl_type format with a
                         concurrency channel id and a trailing %DATA "-":
                         CHANNEL SRC METHOD %#URI %#>ha{User-Agent} -
Mix: 20% revocation hosts, 10% *.crl on other hosts, 70% ordinary browsing.
"""
import os, random, sys, urllib.parse
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rnd = random.Random(int(os.environ.get("SEED", "42")))
REVOCATION_HOSTS = """crl.microsoft.com mscrl.microsoft.com oneocsp.microsoft.com ocsp.msocsp.com
ctldl.windowsupdate.com crl3.digicert.com crl4.digicert.com ocsp.digicert.com cacerts.digicert.com
crl.sectigo.com ocsp.sectigo.com crl.comodoca.com ocsp.comodoca.com crl.usertrust.com ocsp.usertrust.com
crl.globalsign.com ocsp.globalsign.com ocsp2.globalsign.com secure.globalsign.com crl.entrust.net
ocsp.entrust.net aia.entrust.net crl.godaddy.com ocsp.godaddy.com certificates.godaddy.com
crl.starfieldtech.com ocsp.starfieldtech.com r3.o.lencr.org x1.c.lencr.org r10.o.lencr.org r11.o.lencr.org
ocsp.pki.goog crl.pki.goog c.pki.goog o.pki.goog crl.quovadisglobal.com ocsp.quovadisglobal.com
crl.identrust.com ocsp.identrust.com validation.identrust.com crl.buypass.no ocsp.buypass.com
crl.swisssign.net ocsp.swisssign.net crl.certum.pl ocsp.certum.pl crl.actalis.it ocsp.actalis.it
crl.harica.gr ocsp.harica.gr crl.d-trust.net ocsp.d-trust.net crl.apple.com ocsp.apple.com
crl.rootca1.amazontrust.com ocsp.rootca1.amazontrust.com""".split()
import os
with open(os.path.join(os.environ.get("OUT", "."), "revocation_hosts.txt"), "w") as f:
    f.write("\n".join(REVOCATION_HOSTS) + "\n")
TLDS = ["com", "net", "org", "de", "io", "co.uk"]
WORDS = "alpha beta gamma delta news shop cdn static img api login mail video cloud data edge app".split()
HOSTS = [f"{rnd.choice(['www','cdn','api','static','m'])}.{rnd.choice(WORDS)}{i}.{rnd.choice(TLDS)}" for i in range(10000)]
UAS = ["Microsoft-CryptoAPI/10.0", "MSOSIA", "Microsoft Office/16.0 (Windows NT 10.0; MSOSIA)",
       "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
       "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
       "curl/7.88.1", "Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.31"]
UA_W = [10, 3, 3, 50, 20, 4, 10]
def path():
    return "/" + "/".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 4)))
import os
OUT = os.environ.get("OUT", ".")
with open(f"{OUT}/urlrewrite.txt", "w") as fu, open(f"{OUT}/authbypass.txt", "w") as fe:
    for i in range(N):
        r = rnd.random()
        method = "GET"
        if r < 0.20:
            host = rnd.choice(REVOCATION_HOSTS)
            if host.startswith("ocsp") or ".o." in host:
                method = rnd.choice(["GET", "POST"])
                p = "/" if method == "POST" else "/MFMwUTBPME0wSzAJBgUrDgMCGgUABBQ" + str(rnd.randint(0, 10**9))
            else:
                p = path() + f"/CA{rnd.randint(1,99)}.crl"
        elif r < 0.30:
            host = rnd.choice(HOSTS); p = path() + f"/list{rnd.randint(1,999)}.crl"
        else:
            host = rnd.choice(HOSTS); p = path() + rnd.choice(["", ".html", ".js", ".png", "?q=" + rnd.choice(WORDS)])
        url = f"http://{host}{p}"
        src = f"10.{rnd.randint(0,255)}.{rnd.randint(0,255)}.{rnd.randint(1,254)}"
        ua = rnd.choices(UAS, UA_W)[0]
        fu.write(f"{url} {src}/- - {method}\n")
        # authbypass default format: %SRC %METHOD %#URI %#>ha{User-Agent}, plus %DATA
        fe.write(f"{i % 200} {src} {method} {urllib.parse.quote(url, safe=':/?=&;')} {urllib.parse.quote(ua, safe='/;()')} -\n")
