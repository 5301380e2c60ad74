#!/usr/bin/env python3
"""Write a deterministic mixed threat-intel text feed for the parse benchmark.

Usage: gen_mixed_feed.py OUT [LINES]     (default 1,000,000 lines)
       gen_mixed_feed.py OUT --bytes N  (as many whole lines as fit in N bytes, e.g. 67108864:
                                         the 64 MiB download cap)

Same output for the same LINES on every machine (fixed seed, no clock). The mix imitates real
feeds: public IPv4 (some with `,score` or `/32`), a few private/reserved IPv4, IPv6, domains,
http(s) URLs (some defanged), MD5/SHA-1/SHA-256 hashes (some upper-case, some `HASH;comment`),
plus comment lines, blank lines and junk. Standard library only.
"""

import hashlib
import random
import sys

SEED = 20260501
TLDS = ["com", "net", "org", "info", "xyz", "top", "ru", "io", "biz", "co.uk", "de", "cn"]
WORDS = ["update", "cdn", "login", "secure", "mail", "api", "files", "panel", "gate", "static",
         "cloud", "portal", "sync", "track", "data", "srv", "node", "edge", "dl", "bin"]
PATHS = ["/bin.sh", "/x.exe", "/payload/a.dll", "/gate.php?id=", "/wp-content/uploads/", "/i",
         "/mozi.m", "/login/index.html", "/download?file=", "/"]


def public_v4(r: random.Random) -> str:
    while True:
        a = r.randint(1, 223)
        if a not in (10, 100, 127, 169, 172, 192, 198, 203):
            return f"{a}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def private_v4(r: random.Random) -> str:
    return r.choice([
        f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
        f"192.168.{r.randint(0, 255)}.{r.randint(1, 254)}",
        f"127.0.0.{r.randint(1, 254)}",
        f"100.{r.randint(64, 127)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
    ])


def v6(r: random.Random) -> str:
    groups = [f"{r.getrandbits(16):x}" for _ in range(8)]
    groups[0] = r.choice(["2001", "2a02", "2600", "2a01", "2409"])
    if r.random() < 0.5:
        # Compressed form with a zero run in the middle.
        return ":".join(groups[:3]) + "::" + ":".join(groups[6:])
    return ":".join(groups)


def domain(r: random.Random) -> str:
    labels = [r.choice(WORDS) + str(r.randint(0, 99999))]
    if r.random() < 0.4:
        labels.insert(0, r.choice(WORDS))
    return ".".join(labels) + "." + r.choice(TLDS)


def url(r: random.Random) -> str:
    host = public_v4(r) + f":{r.choice([80, 8080, 60905, 443])}" if r.random() < 0.3 else domain(r)
    path = r.choice(PATHS)
    if path.endswith("=") or path.endswith("/"):
        path += str(r.randint(0, 10**6))
    scheme = r.choice(["http", "https"])
    u = f"{scheme}://{host}{path}"
    if r.random() < 0.05:
        u = u.replace("http", "hxxp", 1).replace(".", "[.]", 1)
    return u


def digest(r: random.Random, name: str) -> str:
    h = hashlib.new(name, r.getrandbits(64).to_bytes(8, "little")).hexdigest()
    return h.upper() if r.random() < 0.1 else h


def line(r: random.Random) -> str:
    x = r.random()
    if x < 0.30:
        v = public_v4(r)
        y = r.random()
        if y < 0.10:
            return f"{v},{r.randint(1, 9)}"
        if y < 0.15:
            return f"{v}/32"
        if y < 0.20:
            return f"{v}\t{r.randint(1, 9)}"
        return v
    if x < 0.33:
        return private_v4(r)
    if x < 0.38:
        return v6(r)
    if x < 0.55:
        return domain(r)
    if x < 0.72:
        return url(r)
    if x < 0.78:
        return digest(r, "md5")
    if x < 0.83:
        return digest(r, "sha1")
    if x < 0.92:
        v = digest(r, "sha256")
        return f"{v};Win32/Agent sample {r.randint(0, 9999)}" if r.random() < 0.2 else v
    if x < 0.96:
        return r.choice(["# generated block " + str(r.randint(0, 9999)), "; comment", "// note", "#"])
    if x < 0.98:
        return ""
    return r.choice(["N/A", "not-a-value", "999.1.1.1", "http://", "zzzz", "1.2.3", "-", "abc def"])


def main() -> int:
    args = sys.argv[1:]
    if len(args) == 3 and args[1] == "--bytes":
        out, n, max_bytes = args[0], None, int(args[2])
    elif len(args) in (1, 2):
        out, n, max_bytes = args[0], int(args[1]) if len(args) == 2 else 1_000_000, None
    else:
        sys.stderr.write("usage: gen_mixed_feed.py OUT [LINES] | gen_mixed_feed.py OUT --bytes N\n")
        return 2
    r = random.Random(SEED)
    header = "# iocsync benchmark feed: deterministic mixed IoCs (scripts/gen_mixed_feed.py)\n"
    size, written = len(header), 1
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write(header)
        buf = []
        while n is None or written < n:
            text = line(r) + "\n"
            if max_bytes is not None and size + len(text.encode()) > max_bytes:
                break
            size += len(text.encode())
            written += 1
            buf.append(text)
            if len(buf) == 10_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
