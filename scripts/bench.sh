#!/usr/bin/env bash
# iocsync benchmarks: parse throughput, plan time, end-to-end sync against the emulator.
# Prints every comparison as a ratio measured in the same run. Run from the repo root:
#
#   scripts/bench.sh                 # everything (~15 min on 2 cores)
#   SKIP_E2E=1 scripts/bench.sh      # parse + plan only
#   ONLY=parse|criterion|e2e scripts/bench.sh   # one section; SKIP_BUILD=1 reuses target/release/iocsync
#   ONLY=parse PARSE_ONLY_TARGETS=1 scripts/bench.sh   # the issue-12 targets only: ipsum, 1M mixed, 64 MiB
#                                                      # (+ the two 2-thread A/B rows)
#
# Knobs: RUNS (default 5, runs per parse measurement), FEEDS (default ../shared/feeds),
# E2E_SCALE (default 600), E2E_RUNS (default 5), E2E_CLASSIC_RUNS (default 3),
# E2E_SCALE_ALT (default "1 60": extra iocsync-only runs, unscaled and at the issue's scale;
# empty to skip; the classic side would need ~10 h unscaled, ~10 min per pass at 60).
# Needs: cargo, python3 (standard library only); /usr/bin/time is used for peak RSS if present.
# While it runs, the 1-minute load average is sampled every 15 s into target/bench/load.txt
# (other work on the machine skews every timing: read it with the results).
# Not run by CI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-5}
FEEDS=${FEEDS:-../shared/feeds}
OUT=target/bench
BIN=target/release/iocsync
E2E_SCALE=${E2E_SCALE:-600}
E2E_RUNS=${E2E_RUNS:-5}
E2E_CLASSIC_RUNS=${E2E_CLASSIC_RUNS:-3}
E2E_SCALE_ALT=${E2E_SCALE_ALT-1 60}
mkdir -p "$OUT"
# The load during the run, every 15 s, stopped when the script exits.
: > "$OUT/load.txt"
( while :; do echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/load.txt"; sleep 15; done ) &
LOAD_SAMPLER=$!
load_summary() {
  kill "$LOAD_SAMPLER" 2>/dev/null || true
  echo "load (1-minute average, sampled every 15 s into $OUT/load.txt): $(awk 'NR==1{lo=hi=$2} {if($2<lo)lo=$2; if($2>hi)hi=$2} END{print lo "-" hi}' "$OUT/load.txt")"
}
trap load_summary EXIT

command -v python3 >/dev/null || { echo "bench.sh needs python3 (the classic parser and the timer)" >&2; exit 1; }
[[ -d $FEEDS ]] || { echo "feeds not found at $FEEDS: set FEEDS=/path/to/shared/feeds" >&2; exit 1; }
if [[ ! -x /usr/bin/time ]]; then
  echo "note: /usr/bin/time not found (apt-get install -y time); peak RSS falls back to wait4, an upper bound" >&2
fi

echo "== machine"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  $(grep -m1 'model name' /proc/cpuinfo | sed 's/\s\+/ /g')"
echo "memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc: $(rustc --version)  python: $(python3 --version 2>&1)"
if command -v lscpu >/dev/null; then
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|Hypervisor vendor|L2 cache|L3 cache):' | sed 's/\s\+/ /g'
fi
echo

echo "== build (release, once)"
if [[ -n ${SKIP_BUILD:-} && -x $BIN ]]; then
  echo "SKIP_BUILD set: reusing $BIN ($(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"
else
  cargo build --release -p iocsync 2>&1 | tail -n 1
fi
if [[ ! -s $OUT/mixed-1m.txt ]] || [[ $(wc -l < "$OUT/mixed-1m.txt") -ne 1000000 ]]; then
  python3 scripts/gen_mixed_feed.py "$OUT/mixed-1m.txt" 1000000
fi
# The 64 MiB feed: the same generator, as many whole lines as fit in the 64 MiB download cap.
if [[ ! -s $OUT/mixed-64mib.txt ]]; then
  python3 scripts/gen_mixed_feed.py "$OUT/mixed-64mib.txt" --bytes 67108864
fi
echo "generated feed: $OUT/mixed-1m.txt sha256 $(sha256sum "$OUT/mixed-1m.txt" | cut -c1-16)…"
echo "generated feed: $OUT/mixed-64mib.txt ($(wc -c < "$OUT/mixed-64mib.txt") bytes) sha256 $(sha256sum "$OUT/mixed-64mib.txt" | cut -c1-16)…"
echo

# name | iocsync --format | path | extra parse args | run the classic Python parser (text-like files)
#   | environment for iocsync (optional: the parallel-parse A/B rows)
# The first three are the issue's targets (see the "targets" table the section ends with).
PARSE_CASES=(
  "ipsum.txt|text|$FEEDS/stamparm-ipsum/ipsum.txt||yes"
  "mixed-1m (generated)|text|$OUT/mixed-1m.txt||yes"
  "mixed-64mib (generated)|text|$OUT/mixed-64mib.txt||yes"
  "mixed-1m, 2 parse threads|text|$OUT/mixed-1m.txt||no|IOCSYNC_PARSE_THREADS=2"
  "mixed-64mib, 2 parse threads|text|$OUT/mixed-64mib.txt||no|IOCSYNC_PARSE_THREADS=2"
  "avanzato_c2.txt|text|$FEEDS/criticalpathsecurity/avanzato_c2.txt||yes"
  "malware.ip|text|$FEEDS/blocklistproject/malware.ip||yes"
  "hash-iocs.txt|text|$FEEDS/neo23x0-signature-base/hash-iocs.txt||yes"
  "c2-iocs.txt|text|$FEEDS/neo23x0-signature-base/c2-iocs.txt||yes"
  "tweetfeed urls.txt|text|$FEEDS/tweetfeed/blocklists/urls.txt||yes"
  "urlhaus.csv|csv|$FEEDS/abusech-urlhaus/urlhaus.csv|--column url|no"
  "feodo ipblocklist.csv|csv|$FEEDS/abusech-feodotracker/ipblocklist.csv|--column dst_ip|no"
  "ransomware.txt (hosts)|hosts|$FEEDS/blocklistproject/ransomware.txt||no"
  "tweetfeed today.json|stix|$FEEDS/tweetfeed/stix/today.json||no"
  "tweetfeed misp/ (dir)|misp|$FEEDS/tweetfeed/misp||no"
)

want() { [[ -z ${ONLY:-} || ${ONLY} == "$1" ]]; }

[[ -n ${PARSE_ONLY_TARGETS:-} ]] && PARSE_CASES=("${PARSE_CASES[@]:0:5}")

if want parse; then
echo "== 1. parse throughput (process wall time, median of $RUNS runs; RSS = peak resident set)"
TSV=$OUT/parse.tsv
printf 'name\tformat\tlines\tbytes\twc_s\tiocsync_s\tiocsync_rss\tpython_s\tpython_rss\n' > "$TSV"
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
for case in "${PARSE_CASES[@]}"; do
  IFS='|' read -r name format path extra classic ienv <<< "$case"
  if [[ -d $path ]]; then
    lines=$(cat "$path"/* | wc -l); bytes=$(cat "$path"/* | wc -c)
    wc_json=$(python3 scripts/measure.py "$RUNS" sh -c "cat \"$path\"/* | wc -l")
  else
    lines=$(wc -l < "$path"); bytes=$(wc -c < "$path")
    wc_json=$(python3 scripts/measure.py "$RUNS" wc -l "$path")
  fi
  # shellcheck disable=SC2086 # $extra is deliberately split into arguments
  if [[ -n ${ienv:-} ]]; then
    io_json=$(python3 scripts/measure.py "$RUNS" env "$ienv" "$BIN" -q parse "$path" --format "$format" $extra)
  else
    io_json=$(python3 scripts/measure.py "$RUNS" "$BIN" -q parse "$path" --format "$format" $extra)
  fi
  py_s=-; py_rss=-
  if [[ $classic == yes ]]; then
    py_json=$(python3 scripts/measure.py "$RUNS" python3 scripts/classic_parse.py "$path")
    py_s=$(field "$py_json" median_s); py_rss=$(field "$py_json" peak_rss_kib)
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$format" "$lines" "$bytes" \
    "$(field "$wc_json" median_s)" "$(field "$io_json" median_s)" "$(field "$io_json" peak_rss_kib)" "$py_s" "$py_rss" >> "$TSV"
done
python3 - "$TSV" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def num(x): return None if x in ("-", "") else float(x)
print("| feed | format | lines | MB | wc -l lines/s | iocsync lines/s | iocsync MB/s | iocsync peak RSS MiB | Python lines/s | Python peak RSS MiB | iocsync / Python | iocsync / wc -l |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    lines, mb = int(r["lines"]), int(r["bytes"]) / 1e6
    wc, io, py = num(r["wc_s"]), num(r["iocsync_s"]), num(r["python_s"])
    json_like = r["format"] in ("stix", "misp")
    lps = lambda s: "n/a (JSON)" if json_like else f"{lines / s:,.0f}"
    py_rss = "-" if r["python_rss"] == "-" else f"{int(r['python_rss']) / 1024:.1f}"
    shown = "n/a" if json_like else f"{lines:,}"
    print(f"| {r['name']} | {r['format']} | {shown} | {mb:.2f} | {lps(wc)} | {lps(io)} | {mb / io:.1f} | "
          f"{int(r['iocsync_rss']) / 1024:.1f} | {'-' if py is None else f'{lines / py:,.0f}'} | {py_rss} | "
          f"{'-' if py is None else f'{py / io:.1f}x'} | {wc / io:.3f}x |")
print()
print("iocsync / Python = Python wall time / iocsync wall time (higher: iocsync faster).")
print("iocsync / wc -l = wc -l wall time / iocsync wall time (1.0 = at the I/O floor). Wall times include process start.")
print()
print("Targets (issue 12), this run:")
print("| target | measured | met |")
print("|---|---|---|")
by = {r["name"]: r for r in rows}
def ratio(name):
    r = by.get(name)
    return None if r is None or num(r["python_s"]) is None else num(r["python_s"]) / num(r["iocsync_s"])
def rss_mb(name):
    r = by.get(name)
    # KiB -> MB (10^6 bytes, the stricter reading of the targets' "MB")
    return None if r is None else int(r["iocsync_rss"]) * 1024 / 1e6
checks = [
    ("ipsum.txt: >= 50x faster than naive Python", ratio("ipsum.txt"), lambda v: v >= 50, "{:.1f}x"),
    ("mixed-1m: >= 15x faster than naive Python", ratio("mixed-1m (generated)"), lambda v: v >= 15, "{:.1f}x"),
    ("mixed-1m: <= 60 MB peak RSS", rss_mb("mixed-1m (generated)"), lambda v: v <= 60, "{:.1f} MB peak RSS"),
    ("mixed-64mib: < 150 MB peak RSS", rss_mb("mixed-64mib (generated)"), lambda v: v < 150, "{:.1f} MB peak RSS"),
]
for label, value, ok, fmt in checks:
    shown = "not measured" if value is None else fmt.format(value)
    print(f"| {label} | {shown} | {'-' if value is None else ('yes' if ok(value) else '**no**')} |")
PY
echo

fi

if want criterion; then
echo "== 1b. in-process parse throughput (criterion: cargo bench -p iocsync-ioc --bench parse)"
if ! cargo bench -p iocsync-ioc --bench parse > "$OUT/criterion-parse.log" 2>&1; then
  echo "  criterion parse bench failed (see $OUT/criterion-parse.log):"; tail -n 5 "$OUT/criterion-parse.log"
fi
python3 - <<'PY'
import glob, json, os
for est in sorted(glob.glob("target/criterion/parse/*/new/estimates.json")):
    d = os.path.dirname(est)
    median_ns = json.load(open(est))["median"]["point_estimate"]
    bench = json.load(open(os.path.join(d, "benchmark.json")))
    elems = (bench.get("throughput") or {}).get("Elements")
    rate = f"{elems / median_ns * 1e9:,.0f} lines/s" if elems else "n/a"
    print(f"  {bench['full_id']}: median {median_ns / 1e6:.2f} ms, {rate}")
PY
echo

echo "== 2. plan time, 15,000 desired vs 15,000 existing (criterion: cargo bench -p iocsync-core --bench plan)"
if ! cargo bench -p iocsync-core --bench plan > "$OUT/criterion-plan.log" 2>&1; then
  echo "  criterion plan bench failed (see $OUT/criterion-plan.log):"; tail -n 5 "$OUT/criterion-plan.log"
fi
python3 - <<'PY'
import glob, json, os
for est in sorted(glob.glob("target/criterion/*/new/estimates.json")):
    d = os.path.dirname(est)
    bench = json.load(open(os.path.join(d, "benchmark.json")))
    if bench.get("group_id", "").startswith(("plan", "apply_policy", "allowlist")):
        median_ns = json.load(open(est))["median"]["point_estimate"]
        print(f"  {bench['full_id']}: median {median_ns / 1e6:.2f} ms")
PY
echo

fi

if [[ -n ${SKIP_E2E:-} ]] || ! want e2e; then
  echo "== 3. end to end: skipped (SKIP_E2E set)"
  exit 0
fi
echo "== 3. end to end against the emulator (cargo bench -p iocsync --bench e2e)"
for scale in $E2E_SCALE_ALT; do
  echo "-- iocsync side only, scale $scale"
  IOCSYNC_BENCH_SCALE=$scale IOCSYNC_BENCH_RUNS=$E2E_RUNS IOCSYNC_BENCH_CLASSIC_RUNS=0 \
    cargo bench -q -p iocsync --bench e2e 2> "$OUT/e2e-alt.log" || { tail -n 20 "$OUT/e2e-alt.log"; exit 1; }
  echo
done
echo "-- both sides, scale $E2E_SCALE"
IOCSYNC_BENCH_SCALE=$E2E_SCALE IOCSYNC_BENCH_RUNS=$E2E_RUNS IOCSYNC_BENCH_CLASSIC_RUNS=$E2E_CLASSIC_RUNS \
  cargo bench -q -p iocsync --bench e2e 2> "$OUT/e2e.log" || { tail -n 20 "$OUT/e2e.log"; exit 1; }
