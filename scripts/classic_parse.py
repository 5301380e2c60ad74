#!/usr/bin/env python3
"""The "classic" baseline: a straightforward one-value-at-a-time feed parser in plain Python.

Usage: classic_parse.py FILE

This is how many existing integration scripts read a blocklist: read each line, strip comments,
take the first field, try `ipaddress.ip_address`, else match regexes for hashes, URLs and
domains; keep a set for duplicates. Standard library only. It does not refang, normalise URLs,
check public suffixes or punycode: it does strictly less than `iocsync parse`.
Prints one JSON line with the counts, so the benchmark can check both sides saw the same file.
"""

import ipaddress
import json
import re
import sys

HASH = {32: "FileMd5", 40: "FileSha1", 64: "FileSha256"}
HEX = re.compile(r"^[0-9a-fA-F]+$")
URL = re.compile(r"^https?://[^\s/:]+(:\d+)?(/\S*)?$", re.IGNORECASE)
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)


def classify(value: str):
    """Returns (type, normalised value) or (None, reason)."""
    try:
        ip = ipaddress.ip_address(value)
        if not ip.is_global:
            return None, "private-address"
        return ("IpAddress", str(ip))
    except ValueError:
        pass
    if HEX.match(value) and len(value) in HASH:
        return HASH[len(value)], value.lower()
    if URL.match(value):
        return "Url", value
    if DOMAIN.match(value):
        return "DomainName", value.lower().rstrip(".")
    return None, "invalid-value"


def main() -> int:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: classic_parse.py FILE\n")
        return 2
    accepted, rejected, seen, lines, duplicates = {}, {}, set(), 0, 0
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        for raw in f:
            lines += 1
            line = raw.strip()
            if not line or line.startswith(("#", ";", "//")):
                continue
            value = line.split()[0]
            if not value.lower().startswith(("http://", "https://")):
                value = value.split(",")[0].split(";")[0]
            kind, result = classify(value)
            if kind is None:
                rejected[result] = rejected.get(result, 0) + 1
                continue
            if (kind, result) in seen:
                duplicates += 1
                continue
            seen.add((kind, result))
            accepted[kind] = accepted.get(kind, 0) + 1
    json.dump({"lines": lines, "accepted": accepted, "rejected": rejected, "duplicates": duplicates}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
