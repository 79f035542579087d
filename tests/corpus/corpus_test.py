#!/usr/bin/env python3
"""Real objects through the revocation checker: 0 genuine refused, 0 impostors delivered.

usage: corpus_test.py AUTHBYPASS_BINARY

The files come from Debian packages, fetched with `apt-get download` into a cache outside
the repository (${AUTHBYPASS_CORPUS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/authbypass-corpus},
one folder per package and version), and from files any Debian machine has (ELF programs,
PNG, ZIP). A certificate trust list is built here too: no real authrootstl.cab ships in a
Debian package, so a CertificateTrustList is written with `openssl asn1parse -genconf`,
signed with `openssl cms -econtent_type 1.3.6.1.4.1.311.10.1`, and put in a cabinet by
Debian's gcab (MSZIP). Whether a file is genuine revocation data or an impostor comes from
what the file is (its package, folder and name), never from the checker.

Every file is checked with `authbypass verify` whole and in 1-, 7- and 4096-byte chunks,
in full and in preview mode (`--preview 1024`, as Squid sends). Exit 0: all held; 1: a
genuine file was refused or an impostor delivered; 77 (ctest: skipped) when the packages
cannot be downloaded, said on stdout as SKIP.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lab.testdata import ctl_conf

SKIP = 77
PACKAGES = ["python3-cryptography-vectors", "ca-certificates", "libgcab-tests", "fwupd-tests",
            "shim-signed", "gcab", "libgcab-1.0-0"]
CHUNKS = [16 * 1024 * 1024, 1, 7, 4096]  # the first: each file whole (at most 16 MiB)
MAX_FILE = 16 * 1024 * 1024


def log(msg: str) -> None:
    print(msg, flush=True)


def skip(why: str) -> None:
    log(f"SKIP: {why}")
    sys.exit(SKIP)


def cache_dir() -> Path:
    base = os.environ.get("AUTHBYPASS_CORPUS_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "authbypass-corpus"


def candidate_version(pkg: str) -> str | None:
    out = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            v = line.split(":", 1)[1].strip()
            return None if v in ("", "(none)") else v
    return None


def fetch(pkg: str) -> Path:
    """The package's files, extracted under the cache (downloaded once per version)."""
    version = candidate_version(pkg)
    if version is None:
        skip(f"apt-cache knows no candidate version of {pkg} (run 'apt-get update' first)")
    root = cache_dir() / f"{pkg}_{version.replace(':', '%3a')}"
    done = root / ".extracted"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        r = subprocess.run(["apt-get", "download", f"{pkg}={version}"], cwd=tmp,
                           capture_output=True, text=True, timeout=300)
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if r.returncode != 0 or not debs:
            skip(f"'apt-get download {pkg}={version}' failed (no Debian mirror?): "
                 f"{(r.stderr or r.stdout).strip()[:300]}")
        subprocess.run(["dpkg-deb", "-x", debs[0], str(root)], check=True)
    done.touch()
    return root


def files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file() and not p.is_symlink()
                  and p.stat().st_size <= MAX_FILE)


def run(cmd: list[str], cwd: Path | None = None, **kw) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   **kw)


def build_ctl(work: Path, gcab_root: Path, n_subjects: int, name: str) -> Path:
    """A signed CTL (szOID_CTL SignedData) of n_subjects entries, in a gcab MSZIP cabinet."""
    conf = work / f"{name}.cnf"
    conf.write_text(ctl_conf(n_subjects))
    body = work / f"{name}.der"
    run(["openssl", "asn1parse", "-genconf", str(conf), "-out", str(body), "-noout"])
    folder = work / name
    folder.mkdir()
    stl = folder / "authroot.stl"
    run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-econtent_type",
         "1.3.6.1.4.1.311.10.1", "-in", str(body), "-signer", str(work / "ca.pem"), "-inkey",
         str(work / "ca.key"), "-outform", "DER", "-out", str(stl)])
    return gcab(work, gcab_root, folder, f"{name}.cab")


def gcab(work: Path, gcab_root: Path, folder: Path, cab: str) -> Path:
    env = dict(os.environ, LD_LIBRARY_PATH=str(next(gcab_root.glob("usr/lib/*/")).resolve()))
    out = work / cab
    gcab_bin = gcab_root / "usr/bin/gcab"
    run([str(gcab_bin), "-c", "-z", "--nopath", str(out)] + [str(p) for p in sorted(folder.iterdir())],
        env=env)
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ab = sys.argv[1]
    if shutil.which("apt-get") is None:
        skip("no apt-get on this machine")
    roots = {p: fetch(p) for p in PACKAGES}
    # gcab needs its library: both come from the cache, nothing is installed.
    gcab_root = roots["gcab"]
    lib = next(roots["libgcab-1.0-0"].glob("usr/lib/*/"))
    for so in lib.iterdir():
        target = gcab_root / "usr/lib" / lib.name / so.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy(so, target, follow_symlinks=False)

    vec = next(roots["python3-cryptography-vectors"].glob(
        "usr/lib/python3/dist-packages/cryptography_vectors"))
    x509 = vec / "x509"
    work = Path(tempfile.mkdtemp(prefix="authbypass-corpus-"))
    try:
        # --- genuine revocation data (RESPMOD) ---
        genuine: list[Path] = []
        genuine += files(x509, "PKITS_data/crls/*.crl")           # DER CRLs (NIST PKITS)
        genuine += files(x509, "PKITS_data/certs/*.crt")          # DER certificates
        genuine += files(x509, "ocsp/resp-*.der") + files(x509, "ocsp/*-resp.der")
        genuine += [vec / "pkcs7/amazon-roots.der", vec / "pkcs7/isrg.pem"]  # certs-only
        genuine += files(x509, "custom/crl_*.pem")                # PEM CRLs
        genuine += files(x509, "*.pem") + files(x509, "*.der")    # certificates seen in the wild
        genuine += files(roots["ca-certificates"], "usr/share/ca-certificates/mozilla/*.crt")
        # Vectors that are broken on purpose (their names and cryptography's docs say so):
        # neither genuine nor impostor; counted, and must not crash the check.
        broken = {
            "resp-response-type-unknown-oid.der": "unknown responseType",
            "resp-successful-no-response-bytes.der": "successful without responseBytes",
            "resp-unknown-response-status.der": "responseStatus 4 (unused value)",
            "crl_bad_version.pem": "CRL version 3",
            "badasn1time.pem": "malformed ASN.1 time",
            "cryptography.io.with_garbage.pem": "text and a private key around the PEM block",
            "cryptography.io.chain.pem": "two certificates in one file (one object per body)",
            "cryptography-scts-tbs-precert.der": "a TBSCertificate, not a certificate",
        }
        ber_by_decision = [vec / "pkcs7/amazon-roots.p7b"]  # BER indefinite length (Windows export)
        ctl = [build_ctl_pair(work, gcab_root, n) for n in (3, 2000)]
        genuine_ctl = [c for c in ctl]
        # --- genuine OCSP requests (REQMOD) ---
        requests = files(x509, "ocsp/req-*.der") + files(x509, "ocsp/*-req.der")

        # --- impostors ---
        impostors: list[Path] = []
        impostors += files(x509, "PKITS_data/smime/*.eml")        # signed S/MIME mail
        impostors += files(x509, "PKITS_data/pkcs12/*.p12") + files(vec, "pkcs12/*.p12")
        impostors += files(x509, "requests/*")                     # CSRs (PEM and DER)
        impostors += [vec / "pkcs7/enveloped.pem"]                  # CMS EnvelopedData
        impostors += files(roots["libgcab-tests"], "usr/libexec/installed-tests/libgcab-1.0/*")
        impostors += files(roots["fwupd-tests"], "usr/share/installed-tests/fwupd/**/*")
        impostors += files(roots["shim-signed"], "usr/lib/shim/*.efi.signed")  # Authenticode PE
        impostors += [Path(p) for p in ("/usr/bin/ls", "/usr/bin/openssl", "/bin/sh") if os.path.isfile(p)]
        impostors += sorted(Path(p) for p in glob.glob("/usr/share/python-wheels/*.whl"))[:5]  # ZIP
        impostors += sorted(Path(p) for p in glob.glob("/usr/share/icons/**/*.png", recursive=True))[:5]
        impostors += sorted(Path(p) for p in glob.glob("/usr/share/**/*.pdf", recursive=True))[:5]
        impostors += made_impostors(work, gcab_root)
        # A real root certificate (PEM) followed by a ZIP: what preview mode once let through.
        wheels = sorted(glob.glob("/usr/share/python-wheels/*.whl")) or ["/usr/bin/ls"]
        roots_pem = files(roots["ca-certificates"], "usr/share/ca-certificates/mozilla/*.crt")
        glued = work / "root-then-zip.pem"
        glued.write_bytes(roots_pem[0].read_bytes() + Path(wheels[0]).read_bytes())
        impostors.append(glued)
        missing = [p for p in genuine + impostors + requests if not p.is_file()]
        if missing:
            log(f"FAIL: expected corpus files missing: {missing[:5]}")
            return 1
        genuine = [p for p in genuine if p.name not in broken and p not in ber_by_decision]
        genuine += genuine_ctl
        log(f"corpus: {len(genuine)} genuine, {len(requests)} OCSP requests, "
            f"{len(impostors)} impostors, {len(broken)} broken on purpose, "
            f"{len(ber_by_decision)} BER (refused by decision); cache {cache_dir()}")

        failures = 0
        for preview in (False, True):
            for chunk in CHUNKS:
                mode = f"{'preview 1024' if preview else 'full'}, chunk {chunk if chunk < MAX_FILE else 'whole'}"
                extra = ["--chunk", str(chunk)] + (["--preview", "1024"] if preview else [])
                res = verify(ab, genuine + impostors + ber_by_decision, extra)
                for p in genuine:
                    if not res[p].startswith("verified "):
                        failures += 1
                        log(f"FAIL genuine refused ({mode}): {p}: {res[p]}")
                for p in impostors:
                    if not res[p].startswith("blocked "):
                        failures += 1
                        log(f"FAIL impostor delivered ({mode}): {p}: {res[p]}")
                for p in ber_by_decision:
                    if "indefinite length (BER, not DER)" not in res[p]:
                        failures += 1
                        log(f"FAIL BER not refused as decided ({mode}): {p}: {res[p]}")
                if not preview:
                    req = verify(ab, requests, ["--chunk", str(chunk), "--request"])
                    for p in requests:
                        if not req[p].startswith("verified ocsp-request"):
                            failures += 1
                            log(f"FAIL OCSP request refused ({mode}): {p}: {req[p]}")
                    # Every kind narrower than revocation refuses every impostor too.
                    for kind in ("crl", "ocsp", "cert", "ctl"):
                        narrow = verify(ab, impostors, extra + ["--verify", kind])
                        for p in impostors:
                            if not narrow[p].startswith("blocked "):
                                failures += 1
                                log(f"FAIL impostor delivered (verify {kind}, {mode}): {p}")
                log(f"{mode}: done")
        bro = verify(ab, [x509 / "ocsp" / n for n in broken if (x509 / "ocsp" / n).is_file()] +
                     [p for p in files(x509, "custom/*.pem") + files(x509, "*.pem") + files(x509, "*.der")
                      if p.name in broken], [])
        log(f"broken on purpose: {sum(v.startswith('blocked') for v in bro.values())} of {len(bro)} refused")
        if failures:
            log(f"FAIL: {failures} wrong verdicts")
            return 1
        log("OK: 0 genuine refused, 0 impostors delivered")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_ctl_pair(work: Path, gcab_root: Path, n: int) -> Path:
    if not (work / "ca.pem").exists():
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
             str(work / "ca.key"), "-out", str(work / "ca.pem"), "-subj", "/CN=Root List Signer",
             "-days", "30"])
    return build_ctl(work, gcab_root, n, f"ctl{n}")


def made_impostors(work: Path, gcab_root: Path) -> list[Path]:
    """Signed objects and cabinets that carry something else than revocation data."""
    out = []
    doc = work / "doc.exe"  # a program's first 8 KiB: signed objects under the size caps
    doc.write_bytes(Path("/usr/bin/ls").read_bytes()[:8192])
    ca, key = str(work / "ca.pem"), str(work / "ca.key")
    for name, args in {
        "cades.p7m": ["-nodetach", "-cades"],      # CAdES-BES, content embedded
        "detached.p7s": ["-cades"],                 # detached signature
        "authenticode.p7": ["-nodetach", "-econtent_type", "1.3.6.1.4.1.311.2.1.4"],
    }.items():
        run(["openssl", "cms", "-sign", "-binary", "-in", str(doc), "-signer", ca, "-inkey", key,
             "-outform", "DER", "-out", str(work / name)] + args)
        out.append(work / name)
    # An RFC 3161 time-stamp token.
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(work / "tsa.key"), "-out", str(work / "tsa.pem"), "-subj", "/CN=TSA",
         "-days", "30", "-addext", "extendedKeyUsage=critical,timeStamping"])
    run(["openssl", "ts", "-query", "-data", str(doc), "-sha256", "-cert", "-out", str(work / "q.tsq")])
    (work / "serial").write_text("01\n")
    (work / "tsa.cnf").write_text(
        "[tsa]\ndefault_tsa = t\n[t]\nserial = serial\nsigner_digest = sha256\n"
        "default_policy = 1.2.3.4\ndigests = sha256\ness_cert_id_alg = sha256\n")
    run(["openssl", "ts", "-reply", "-config", "tsa.cnf", "-queryfile", "q.tsq", "-signer", "tsa.pem",
         "-inkey", "tsa.key", "-token_out", "-out", "token.tst"], cwd=work)
    out.append(work / "token.tst")
    # A cabinet whose authroot.stl is a program, and one holding a program beside it.
    for name, members in {"prog-as-stl": {"authroot.stl": "/usr/bin/ls"},
                          "two-files": {"authroot.stl": str(work / "ctl3" / "authroot.stl"),
                                        "setup.exe": "/usr/bin/ls"}}.items():
        folder = work / name
        folder.mkdir()
        for member, src in members.items():
            shutil.copy(src, folder / member)
        out.append(gcab(work, gcab_root, folder, f"{name}.cab"))
    return out


def verify(ab: str, paths: list[Path], extra: list[str]) -> dict[Path, str]:
    """Each path's `authbypass verify` line, after 'PATH: '."""
    res: dict[Path, str] = {}
    for i in range(0, len(paths), 400):
        batch = paths[i:i + 400]
        r = subprocess.run([ab, "verify", *extra, "--", *map(str, batch)] if False else
                           [ab, "verify", *extra, *map(str, batch)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode not in (0, 1):
            raise SystemExit(f"FAIL: authbypass verify exited {r.returncode}: {r.stderr[:500]}")
        lines = r.stdout.splitlines()
        for p in batch:
            prefix = f"{p}: "
            hit = next((l for l in lines if l.startswith(prefix)), None)
            if hit is None:
                raise SystemExit(f"FAIL: no verdict for {p}")
            res[p] = hit[len(prefix):]
    return res


if __name__ == "__main__":
    sys.exit(main())
