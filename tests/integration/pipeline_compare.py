"""Compares what `sockd-check simulate --batch --json` predicts for each flow
with what a live sockd did (sockd_pipeline_live.py): verdict and deciding
rule (from sockd's log line), the reply code, and the route (the egress
address the destination saw). Used by sockd.netbed_pipeline; its own test
is pipeline_compare_test.py.

    python3 pipeline_compare.py SIMULATED.jsonl LIVE.jsonl

Exit 0 when every flow agrees, 1 otherwise (each difference printed)."""
import json
import re
import sys


def parse_log_fields(line):
    """key=value pairs of a sockd text log line (values may be quoted)."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1]
        out[m.group(1)] = v
    return out


def expected(sim):
    """What sockd should do for a flow, from simulate's JSON object."""
    log = parse_log_fields(sim.get("log") or "")
    rule = log.get("rule", "-")
    # simulate names rules by the path it was given; sockd by the path in
    # gateway.toml: compare the file's base name and the line.
    if rule != "-":
        rule = rule.rsplit("/", 1)[-1]
    verdict = log.get("verdict", "-") or "-"
    granted = sim.get("reply") in (0, 90)
    route = sim.get("route") if granted and sim.get("verdict") == "permit" else None
    return {"verdict": verdict, "rule": rule, "reply": sim.get("reply"), "route": route}


def observed(live):
    """What the live sockd did for a flow (sockd_pipeline_live.py's object)."""
    log = parse_log_fields(live.get("log") or "")
    rule = log.get("rule", "-")
    if rule != "-":
        rule = rule.rsplit("/", 1)[-1]
    reply = log.get("reply", "-")
    return {"verdict": log.get("verdict", "-") or "-", "rule": rule,
            "reply": int(reply) if reply not in ("-", "") else None,
            "route": live.get("egress")}


def compare(simulated, live):
    """Lists of differences (strings), flow by flow, matched on request_line."""
    diffs = []
    live_by_line = {l["request_line"]: l for l in live}
    for sim in simulated:
        n = sim["request_line"]
        if n not in live_by_line:
            diffs.append("flow at line %d: no live result" % n)
            continue
        want, got = expected(sim), observed(live_by_line[n])
        for key in ("verdict", "rule", "reply", "route"):
            if want[key] != got[key]:
                diffs.append("flow at line %d: %s: simulate says %r, sockd did %r"
                             % (n, key, want[key], got[key]))
    sim_lines = {s["request_line"] for s in simulated}
    for n in sorted(set(live_by_line) - sim_lines):
        diffs.append("flow at line %d: no simulated result" % n)
    return diffs


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main(argv):
    simulated, live = read_jsonl(argv[1]), read_jsonl(argv[2])
    diffs = compare(simulated, live)
    for s in simulated:
        ok = not any(d.startswith("flow at line %d:" % s["request_line"]) for d in diffs)
        print("%s - line %d: %s" % ("ok  " if ok else "FAIL", s["request_line"],
                                     json.dumps(expected(s), sort_keys=True)))
    for d in diffs:
        print("DIFF " + d)
    if not simulated:
        print("FAIL - no flows")
        return 1
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
