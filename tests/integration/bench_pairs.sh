#!/usr/bin/env bash
# bench.socks_pairs: `PAIRS=2 bash bench/socks.sh` (docs/performance.md, the
# PAIRS variable) run small (one arrangement, 1 s runs, sockd on its ring
# against the same binary as sockd_before_epoll, SOCKD_BEFORE on its epoll
# loop), and its table checked against the runs it printed: four
# cells, each with its two pairs, the ratio of the sums and the geometric
# mean recomputed from the per-run CPU and rate figures; no relay is left
# running. About 40 seconds.
# Environment: SOCKD (the binary), DIODE_SOURCE_DIR, DIODE_BUILD_DIR.
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cd "$DIODE_SOURCE_DIR"
before=$(pgrep -fc -- "$SOCKD --config" || true)
PAIRS=2 RATE_SECONDS=1 ARRANGEMENTS=unpinned NO_BUILD=1 BUILD_DIR="$DIODE_BUILD_DIR" \
  SOCKD_BEFORE="$SOCKD" PAIR_SERVERS="sockd:sockd_before_epoll" OUT="$out" \
  bash bench/socks.sh >"$out/report" 2>&1 || { cat "$out/report"; fail "bench/socks.sh failed"; }
cat "$out/report"

rows=$(grep -c '^| sockd / sockd_before_epoll | unpinned |' "$out/report") || true
# sockd_before_epoll ran with the benchmark's configuration, io = "epoll" added.
grep -q '^io = "epoll"$' "$out/conf-epoll/gateway.toml" || fail "sockd_before_epoll's configuration has no io = \"epoll\""
echo "ok - sockd_before_epoll ran with io = \"epoll\""
[ "$rows" = 4 ] || fail "expected 4 table rows, got $rows"
# Every run line: "  NAME pair.ARR.CLOSE.cC.N RATE/s ... relay CPU X us/session".
python3 - "$out/report" <<'PY' || fail "the table does not follow from the runs"
import math, re, sys
runs, rows = {}, []
for line in open(sys.argv[1]):
    m = re.match(r"\s+(\S+)\s+pair\.(\w+)\.(\w+)\.c(\d+)\.(\d+)\s+([\d.]+)/s.*relay CPU (\d+) us/session", line)
    if m:
        name, arr, close, c, n, rate, cpu = m.groups()
        runs[(name, arr, close, c, n)] = (float(rate), float(cpu))
    elif line.startswith("| sockd / sockd_before_epoll |"):
        rows.append([f.strip() for f in line.strip().strip("|").split("|")])
assert len(rows) == 4, rows
for r in rows:
    arr, close, c = r[1], r[2], r[3]
    pairs = [(runs[("sockd", arr, close, c, n)], runs[("sockd_before_epoll", arr, close, c, n)]) for n in ("1", "2")]
    for col, idx in ((4, 1), (8, 0)):  # CPU: sums at column 4; rate: sums at column 8
        a = [p[0][idx] for p in pairs]
        b = [p[1][idx] for p in pairs]
        sums = sum(a) / sum(b)
        geo = math.exp(sum(math.log(x / y) for x, y in zip(a, b)) / 2)
        assert abs(float(r[col]) - sums) < 0.0006, (r, sums)
        assert abs(float(r[col + 1].split()[0]) - geo) < 0.0006, (r, geo)
        lo, hi = (float(x) for x in r[col + 2].split("–"))
        ratios = [x / y for x, y in zip(a, b)]
        assert abs(lo - min(ratios)) < 0.006 and abs(hi - max(ratios)) < 0.006, (r, ratios)
        assert r[col + 3].endswith("of 2"), r
print("ok - 4 cells, sums, geometric means and ranges follow from the runs")
PY
# Every relay the script started is gone (the test runs alone: RUN_SERIAL).
after=$(pgrep -fc -- "$SOCKD --config" || true)
[ "$after" = "$before" ] || fail "sockd processes before: $before, after: $after"
echo "ok - bench.socks_pairs"
