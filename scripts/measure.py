#!/usr/bin/env python3
"""Run one command N times; print its median wall time and peak RSS as one JSON line.

Usage: measure.py RUNS CMD [ARGS...]

Wall time is `time.perf_counter` around spawn-to-exit (median of RUNS). Peak RSS comes from one
extra run under `/usr/bin/time -f %M` ("Maximum resident set size", KiB) when that tool exists;
otherwise from the child's `ru_maxrss` via `os.wait4`, which Linux floors at this Python
process's own RSS (~15 MB, inherited through vfork), so small values are then upper bounds:
`rss_source` says which. Stdout of the command is discarded; a non-zero exit aborts with the
command's stderr. Standard library only.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"


def run_once(cmd):
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4 reaps the child and returns its own rusage (not the cumulative RUSAGE_CHILDREN).
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode("utf-8", "replace") if p.stderr else ""
    if p.returncode != 0:
        sys.stderr.write(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n{err}")
        sys.exit(1)
    return wall, usage.ru_maxrss  # KiB on Linux


def peak_rss_with_time(cmd):
    """Peak RSS in KiB measured by GNU time, or None when it is not installed or fails."""
    if not os.access(GNU_TIME, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        p = subprocess.run([GNU_TIME, "-f", "%M", "-o", out.name, *cmd],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if p.returncode != 0:
            return None
        text = out.read().strip().splitlines()
        return int(text[-1]) if text and text[-1].isdigit() else None


def main() -> int:
    if len(sys.argv) < 3:
        sys.stderr.write("usage: measure.py RUNS CMD [ARGS...]\n")
        return 2
    runs, cmd = int(sys.argv[1]), sys.argv[2:]
    walls, rss = [], []
    for _ in range(runs):
        w, r = run_once(cmd)
        walls.append(w)
        rss.append(r)
    rss_time = peak_rss_with_time(cmd)
    print(json.dumps({
        "runs": runs,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "peak_rss_kib": rss_time if rss_time is not None else max(rss),
        "rss_source": "gnu-time" if rss_time is not None else "wait4-upper-bound",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
