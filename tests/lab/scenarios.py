"""The seed scenario (Lync / MSOSIA behind an authenticating Squid) as requests through a
SquidLab, and the checks of Squid's access log and the helper's audit log that go with
them. Shared by squid_helper_test.py and demo.py."""

from __future__ import annotations

import collections
import re
import urllib.parse
from dataclasses import dataclass, field

CRYPTOAPI_61 = "Microsoft-CryptoAPI/6.1"
CRYPTOAPI_10 = "Microsoft-CryptoAPI/10.0"
MSOIDCRL_UA = ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 6.1; MSOIDCRL 7.250.4303.0; "
               "App msoidsvc.exe, 6.1.7601.17514, {B7BA0D1E-7D44-4A5E-8F2A-DA7A8C2F2E52})")
BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")


@dataclass
class Case:
    label: str        # what the row shows
    method: str       # GET, HEAD, POST or CONNECT
    url: str          # an absolute http:// URL, or host:port for CONNECT
    ua: str
    expect: int       # 200 (or 200 for an allowed CONNECT tunnel) / 407
    rule: str | None = None  # the rule expected to bypass (None: authentication applies)
    user: bool = False       # send the lab user's credentials
    got: int | None = field(default=None, compare=False)

    @property
    def request(self) -> str:
        return f"{self.method} {self.url}" + (" (with credentials)" if self.user else "")

    @property
    def ok(self) -> bool:
        return self.got == self.expect

    @property
    def bypassed(self) -> bool:
        return self.rule is not None and self.got == self.expect == 200


SEED = [
    Case("CryptoAPI fetches a VeriSign CRL", "GET", "http://crl.verisign.com/pca3.crl",
         CRYPTOAPI_61, 200, "ca-revocation-hosts"),
    Case("CryptoAPI fetches a Sectigo CRL (*.crl advice)", "GET",
         "http://crl.sectigo.com/SectigoRSADomainValidationSecureServerCA.crl",
         CRYPTOAPI_10, 200, "crl-files"),
    Case("Sign-In Assistant CONNECT to Microsoft sign-in", "CONNECT",
         "login.microsoftonline.com:443", MSOIDCRL_UA, 200, "msoidcrl-signin"),
    Case("Sign-In Assistant CONNECT elsewhere", "CONNECT", "www.example.com:443",
         MSOIDCRL_UA, 407),
    Case("... with credentials", "CONNECT", "www.example.com:443", MSOIDCRL_UA, 200,
         user=True),
    Case("Browser, no credentials", "GET", "http://www.example.com/", BROWSER_UA, 407),
    Case("Browser, with credentials", "GET", "http://www.example.com/", BROWSER_UA, 200,
         user=True),
    Case("Evasion: .crl in the query", "GET", "http://evil.test/index.html?x=.crl",
         CRYPTOAPI_10, 407),
    Case("Evasion: .crl in ;params", "GET", "http://evil.test/index.html;.crl",
         CRYPTOAPI_10, 407),
    Case("Evasion: POST to a .crl", "POST", "http://evil.test/x.crl", CRYPTOAPI_10, 407),
    Case("Evasion: CONNECT to a CRL host", "CONNECT", "crl.microsoft.com:443",
         CRYPTOAPI_10, 407),
    Case("Evasion: look-alike host", "GET", "http://crl.verisign.com.evil.test/x.bin",
         CRYPTOAPI_10, 407),
]


def run_case(lab, case: Case) -> Case:
    user = lab.USER if case.user else None
    if case.method == "CONNECT":
        case.got = lab.connect(case.url, ua=case.ua, user=user)
    else:
        case.got = lab.get(case.url, ua=case.ua, method=case.method, user=user)
    return case


def _log_url(case: Case) -> str:
    """The URL as Squid's %ru logs it: strip_query_terms keeps the '?', drops the rest."""
    if case.method == "CONNECT" or "?" not in case.url:
        return case.url
    return case.url.split("?", 1)[0] + "?"


def check_logs(lab, cases: list[Case], timeout: float = 5.0) -> list[str]:
    """Checks, for the requests in `cases` (already run, in this order, and nothing else
    sent through the lab apart from its readiness probe), that:
      * Squid's access log has one line per request; a bypassed one names its rule
        in %ea and %et (authbypass/<rule>) and has no user, the others have %ea "-";
      * the audit log has exactly one `bypass` event per bypassed request (ttl=0: no
        answer comes from Squid's cache), with the rule, method and URL;
      * the origin / the CONNECT peer saw the allowed requests and none of the 407s.
    Returns a list of failure messages (empty when all is well)."""
    failures: list[str] = []

    def want_access():
        return [c for c in cases if c.got is not None]

    def access_ready():
        entries = [e for e in lab.access_entries() if e["ua"] != "squidlab-readiness"]
        return entries if len(entries) >= len(want_access()) else None

    # CONNECT lines are written when the tunnel closes: wait for all of them.
    entries = lab.wait_for(access_ready, timeout) or \
        [e for e in lab.access_entries() if e["ua"] != "squidlab-readiness"]

    # Match each request to an access-log line with the same method, URL and UA.
    pool = list(entries)
    for c in cases:
        if c.got is None:
            continue
        match = next((e for e in pool if e["method"] == c.method and e["url"] == _log_url(c)
                      and e["ua"] == c.ua and e["code"] == c.got), None)
        if match is None:
            failures.append(f"access log: no line for {c.request} with status {c.got}")
            continue
        pool.remove(match)
        if c.bypassed:
            if match["ea"] != c.rule or match["et"] != f"authbypass/{c.rule}":
                failures.append(f"access log: {c.request} bypassed but %ea={match['ea']!r} "
                                f"%et={match['et']!r} (want {c.rule!r}, 'authbypass/{c.rule}'): "
                                f"{match['line']}")
            if match["user"] != "-":
                failures.append(f"access log: bypassed {c.request} has user {match['user']!r}")
        else:
            if match["ea"] != "-":
                failures.append(f"access log: {c.request} not bypassed but %ea={match['ea']!r}")
            if c.user and c.got == 200 and match["user"] != lab.USER:
                failures.append(f"access log: {c.request} logged user {match['user']!r}, "
                                f"want {lab.USER!r}")
    for e in pool:
        failures.append(f"access log: unexpected line {e['line']}")

    # Audit: exactly one bypass event per bypassed request.
    events = [e for e in lab.audit_events() if e.get("event") == "bypass"]
    want = collections.Counter((c.rule, c.method, c.url) for c in cases if c.bypassed)
    got = collections.Counter((e.get("rule"), e.get("method"), e.get("url")) for e in events)
    for key in sorted(set(want) | set(got), key=str):
        if want[key] != got[key]:
            failures.append(f"audit log: {got[key]} bypass event(s) for rule={key[0]} "
                            f"{key[1]} {key[2]}, want {want[key]}")
    for e in events:
        if e.get("src") != "127.0.0.1" or not re.fullmatch(r"[0-9a-f]{64}", e.get("policy_sha256", "")):
            failures.append(f"audit log: bypass event without src/policy_sha256: {e}")

    # What reached the loopback servers.
    seen_http = collections.Counter((r["method"], r["host"], r["path"]) for r in lab.origin.requests
                                    if r["method"] != "TLS")
    seen_connect = collections.Counter(r["host"] for r in lab.tunnel.requests
                                       if r["method"] == "CONNECT")
    for c in cases:
        if c.got is None:
            continue
        if c.method == "CONNECT":
            reached = seen_connect[c.url] > 0
        else:
            u = urllib.parse.urlsplit(c.url)
            path = u.path + ("?" + u.query if u.query else "")  # urlsplit keeps ;params
            reached = seen_http[(c.method, u.netloc, path)] > 0
        if c.got == 200 and not reached:
            failures.append(f"{c.request}: answered 200 but never reached the loopback "
                            f"{'CONNECT peer' if c.method == 'CONNECT' else 'origin'}")
        if c.got == 407 and reached and not any(
                o is not c and o.got == 200 and o.method == c.method and o.url == c.url
                for o in cases):
            failures.append(f"{c.request}: answered 407 but reached the origin anyway")
    return failures


def table(cases: list[Case]) -> str:
    """An aligned table: request, expected, got, OK/FAIL."""
    def exp(c):
        return f"{c.expect} bypass ({c.rule})" if c.rule else str(c.expect)

    rows = [("request", "expected", "got", "result")]
    rows += [(f"{c.request}", exp(c), "-" if c.got is None else str(c.got),
              "OK" if c.ok else "FAIL") for c in cases]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
