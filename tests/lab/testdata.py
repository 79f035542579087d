#!/usr/bin/python3
"""Makes the ICAP tests' data at test time with openssl: genuine revocation objects and
impostors. usage: testdata.py DIR   (idempotent: a complete DIR is left as it is)

Genuine: a CA (ca.pem, ca.der: a DER certificate), a leaf certificate, a small CRL
(crl.der, a few revocations), CRLs of about 40 and 70 KB, a ~20 MB CRL (big.crl: the CA database's index file is
written directly with 560,000 revoked serials, then `openssl ca -gencrl`), its PEM form
(crl.pem), an OCSP request and response for the leaf (ocsp-req.der, ocsp-resp.der,
`openssl ocsp`), a certs-only PKCS#7 bundle (ca.p7c, `openssl crl2pkcs7 -nocrl`).
Impostors: page.html, app.exe (MZ header), junk20m.bin (20 MB of random bytes),
junk1m.bin (1 MB), big-truncated.crl (the 20 MB CRL without its last 100 KB),
big-corrupt.crl (the 20 MB CRL with 64 KB of random bytes at 10 MB), crl.der.gz
(the CRL gzip-compressed), crl-appended.crl (the CRL with bytes after it).
A CAB trust list (ctl.cab: a signed szOID_CTL SignedData as authroot.stl, MSZIP) and
impostors of the kinds a name check or a preview would pass: prog-stl.cab (a program as
authroot.stl), signed-doc.p7m and detached.p7s (CAdES signatures, content embedded and
detached), cert-then-zip.pem (a PEM certificate followed by 2 MB of ZIP).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import subprocess
import sys
import time
import zlib

BIG_REVOCATIONS = 560_000

FILES = ["ca.pem", "ca.der", "leaf.pem", "crl.der", "crl.pem", "crl-40k.crl", "crl-70k.crl", "big.crl", "ocsp-req.der",
         "ocsp-resp.der", "ca.p7c", "page.html", "app.exe", "junk20m.bin", "junk1m.bin",
         "big-truncated.crl", "big-corrupt.crl", "crl.der.gz", "crl-appended.crl",
         "ctl.cab", "cert-then-zip.pem", "signed-doc.p7m", "detached.p7s", "prog-stl.cab"]


def sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def run(*cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"testdata: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r


CA_CNF = """[ca]
default_ca = lab
[lab]
database = {db}
crlnumber = {crlnumber}
default_md = sha256
default_crl_days = 30
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def gencrl(d: str, index_lines: list[str] | None, index_file: str, out_der: str):
    with open(os.path.join(d, index_file), "w") as f:
        if index_lines is not None:
            f.writelines(index_lines)
    with open(os.path.join(d, index_file + ".crlnumber"), "w") as f:
        f.write("1000\n")
    cnf = os.path.join(d, index_file + ".cnf")
    with open(cnf, "w") as f:
        f.write(CA_CNF.format(db=index_file, crlnumber=index_file + ".crlnumber"))
    run("openssl", "ca", "-batch", "-config", cnf, "-gencrl", "-keyfile", "ca.key", "-cert",
        "ca.pem", "-out", out_der + ".pem", cwd=d)
    run("openssl", "crl", "-in", out_der + ".pem", "-outform", "DER", "-out", out_der, cwd=d)


def make(d: str):
    t0 = time.monotonic()
    os.makedirs(d, exist_ok=True)
    if all(os.path.exists(os.path.join(d, f)) for f in FILES):
        return
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CNF.format(db="index.txt", crlnumber="crlnumber"))
    # An RSA CA, as real CAs (Microsoft, DigiCert, ...) have: its AlgorithmIdentifiers carry
    # NULL parameters, which the checker once refused. The leaf key is EC (mixed chains).
    run("openssl", "req", "-x509", "-newkey", "rsa:2048",
        "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-subj", "/CN=authbypass test CA", "-days", "30",
        "-config", "ca.cnf", "-extensions", "v3_ca", cwd=d)
    run("openssl", "x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der", cwd=d)
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "leaf.key", "-out",
        "leaf.csr", "-subj", "/CN=leaf.example.test", cwd=d)
    run("openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "4660", "-days", "30", "-out", "leaf.pem", cwd=d)
    # small CRL: a few revocations
    few = [f"R\t301231235959Z\t241201000000Z,keyCompromise\t{0x2000 + i:04X}\tunknown\t/CN=r{i}\n"
           for i in range(5)]
    gencrl(d, few, "index-small.txt", "crl.der")
    os.replace(os.path.join(d, "crl.der.pem"), os.path.join(d, "crl.pem"))
    # around Squid's 64 KB limits (Allow: 204 outside the preview, bug 5352) and the
    # service's 32 KiB hold window
    for name, n in (("crl-40k.crl", 1100), ("crl-70k.crl", 1950)):
        lines = [f"R\t301231235959Z\t241201000000Z,keyCompromise\t{0x30000 + i:032X}\tunknown\t/CN=m{i}\n"
                 for i in range(n)]
        gencrl(d, lines, "index-" + name + ".txt", name)
        os.remove(os.path.join(d, name + ".pem"))
    # ~20 MB CRL: the index file written directly
    lines = [f"R\t301231235959Z\t241201000000Z,keyCompromise\t{0x100000 + i:032X}\tunknown\t/CN=r{i}\n"
             for i in range(BIG_REVOCATIONS)]
    gencrl(d, lines, "index-big.txt", "big.crl")
    os.remove(os.path.join(d, "big.crl.pem"))
    # OCSP request and response for the leaf (the leaf is "good": index has it valid)
    with open(os.path.join(d, "index.txt"), "w") as f:
        f.write("V\t301231235959Z\t\t1234\tunknown\t/CN=leaf.example.test\n")
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("01\n")
    run("openssl", "ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce", "-reqout",
        "ocsp-req.der", cwd=d)
    run("openssl", "ocsp", "-index", "index.txt", "-rsigner", "ca.pem", "-rkey", "ca.key",
        "-CA", "ca.pem", "-reqin", "ocsp-req.der", "-respout", "ocsp-resp.der", cwd=d)
    run("openssl", "crl2pkcs7", "-nocrl", "-certfile", "ca.pem", "-outform", "DER", "-out",
        "ca.p7c", cwd=d)
    # impostors
    with open(os.path.join(d, "page.html"), "wb") as f:
        f.write(b"<!DOCTYPE html>\n<html><head><title>Totally a CRL</title></head>"
                b"<body><script>alert(1)</script></body></html>\n")
    with open(os.path.join(d, "app.exe"), "wb") as f:
        f.write(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + os.urandom(200_000))
    with open(os.path.join(d, "junk20m.bin"), "wb") as f:
        for _ in range(20):
            f.write(os.urandom(1 << 20))
    with open(os.path.join(d, "junk1m.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    big = os.path.join(d, "big.crl")
    size = os.path.getsize(big)
    with open(big, "rb") as fi, open(os.path.join(d, "big-truncated.crl"), "wb") as fo:
        fo.write(fi.read(size - 100_000))
    # the 20 MB CRL with 64 KB of junk in the middle (same size): fails mid-stream
    with open(big, "rb") as fi, open(os.path.join(d, "big-corrupt.crl"), "wb") as fo:
        b = bytearray(fi.read())
        b[10_000_000:10_000_000 + 65536] = os.urandom(65536)
        fo.write(b)
    with open(os.path.join(d, "crl.der"), "rb") as f:
        crl = f.read()
    with open(os.path.join(d, "crl.der.gz"), "wb") as f:
        f.write(gzip.compress(crl))
    with open(os.path.join(d, "crl-appended.crl"), "wb") as f:
        f.write(crl + b"MZ appended payload" + os.urandom(4000))
    make_signed(d)
    for f in os.listdir(d):
        if f.startswith("index-big.txt"):
            os.remove(os.path.join(d, f))  # 54 MB, only needed for gencrl
        else:
            os.chmod(os.path.join(d, f), 0o644)
    print(f"testdata: made {len(FILES)} files in {d} in {time.monotonic() - t0:.1f}s "
          f"(big.crl {size} bytes)")


def cab(name: str, data: bytes) -> bytes:
    """A cabinet holding `data` as `name`, MSZIP (each 32 KiB block a raw deflate stream
    whose dictionary is the previous 32 KiB, as Microsoft's tools write it)."""
    blocks = []
    for at in range(0, len(data), 32768):
        raw = data[at:at + 32768]
        z = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=data[max(0, at - 32768):at]) \
            if at else zlib.compressobj(9, zlib.DEFLATED, -15)
        blocks.append((b"CK" + z.compress(raw) + z.flush(), len(raw)))
    entry = struct.pack("<IIHHHH", len(data), 0, 0, 0, 0, 0x20) + name.encode() + b"\0"
    coff_data = 36 + 8 + len(entry)
    body = b"".join(struct.pack("<IHH", 0, len(c), n) + c for c, n in blocks)
    head = b"MSCF" + struct.pack("<IIIII", 0, coff_data + len(body), 0, 44, 0) + b"\x03\x01" + \
        struct.pack("<HHHHH", 1, 1, 0, 0, 0)
    return head + struct.pack("<IHH", coff_data, len(blocks), 1) + entry + body


CTL_CONF = """asn1 = SEQUENCE:ctl
[ctl]
usage = SEQUENCE:usage
listid = FORMAT:HEX,OCTETSTRING:0102
seq = INTEGER:0x1234
this = UTCTIME:261201000000Z
alg = SEQUENCE:alg
subjects = SEQUENCE:subjects
[usage]
u = OID:1.3.6.1.4.1.311.10.3.9
[alg]
a = OID:1.3.14.3.2.26
[subjects]
"""


def ctl_conf(n_subjects: int) -> str:
    """`openssl asn1parse -genconf` text of a certificate trust list (the content of a
    szOID_CTL SignedData) with n_subjects entries, each a hash and one attribute."""
    subjects = "".join(f"s{i} = SEQUENCE:subj{i}\n" for i in range(n_subjects))
    subjects += "".join(
        f"[subj{i}]\nhash = FORMAT:HEX,OCTETSTRING:{i:040x}\nattrs = SET:attrs{i}\n"
        f"[attrs{i}]\na = SEQUENCE:attr{i}\n[attr{i}]\noid = OID:1.3.6.1.4.1.311.10.11.11\n"
        f"v = SET:val{i}\n[val{i}]\nv = OCTETSTRING:root{i}\n" for i in range(n_subjects))
    return CTL_CONF + subjects


def make_signed(d: str):
    """A CAB trust list (a signed szOID_CTL SignedData as authroot.stl, ~60 KB so that it
    spans several MSZIP blocks) and SignedData / CAB impostors."""
    with open(os.path.join(d, "ctl.cnf"), "w") as f:
        f.write(ctl_conf(900))
    run("openssl", "asn1parse", "-genconf", "ctl.cnf", "-out", "ctl.der", "-noout", cwd=d)
    run("openssl", "cms", "-sign", "-binary", "-nodetach", "-econtent_type",
        "1.3.6.1.4.1.311.10.1", "-in", "ctl.der", "-signer", "ca.pem", "-inkey", "ca.key",
        "-outform", "DER", "-out", "authroot.stl", cwd=d)
    with open(os.path.join(d, "authroot.stl"), "rb") as f:
        stl = f.read()
    with open(os.path.join(d, "ctl.cab"), "wb") as f:
        f.write(cab("authroot.stl", stl))
    with open(os.path.join(d, "app.exe"), "rb") as f:
        program = f.read()
    with open(os.path.join(d, "prog-stl.cab"), "wb") as f:
        f.write(cab("authroot.stl", program))
    with open(os.path.join(d, "doc.bin"), "wb") as f:
        f.write(program[:8192])
    run("openssl", "cms", "-sign", "-binary", "-nodetach", "-cades", "-in", "doc.bin", "-signer",
        "ca.pem", "-inkey", "ca.key", "-outform", "DER", "-out", "signed-doc.p7m", cwd=d)
    run("openssl", "cms", "-sign", "-binary", "-cades", "-in", "doc.bin", "-signer", "ca.pem",
        "-inkey", "ca.key", "-outform", "DER", "-out", "detached.p7s", cwd=d)
    with open(os.path.join(d, "ca.pem"), "rb") as f:
        pem = f.read()
    with open(os.path.join(d, "cert-then-zip.pem"), "wb") as f:
        f.write(pem + b"PK\x03\x04" + os.urandom(2 << 20))
    for tmp in ("ctl.cnf", "ctl.der", "authroot.stl", "doc.bin"):
        os.remove(os.path.join(d, tmp))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    make(sys.argv[1])
