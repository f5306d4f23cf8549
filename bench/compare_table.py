#!/usr/bin/env python3
"""Prints the side-by-side table of a bench/compare.sh results file.

    python3 bench/compare_table.py bench/results/20260101T120000Z.jsonl

Each line of the file is {"server", "case", "run", "result": <latchkey bench --json>}
or {"server", "case", "run", "error": "..."}. For every case and server the table
shows the run with the most requests per server CPU-second (rps, p99 and errors are
that run's), every run's figure, and for Latchkey the ratio of its best figure to
oidc-provider's: above 1 means Latchkey does more work per CPU-second. A peer run
with errors in more than 1% of its requests gets no ratio.
"""

import json
import sys

PEER = "oidc-provider"
NOROTATE = "oidc-provider-norotate"
SERVER_ORDER = ["latchkey-sqlite", "latchkey-postgres", PEER, NOROTATE]
CASE_ORDER = [
    "cc-es256", "cc-eddsa", "cc-opaque", "refresh", "introspect-jwt",
    "introspect-opaque", "revoke-introspect-opaque", "revoke-introspect-jwt",
]


def order(values, known):
    return sorted(values, key=lambda v: (known.index(v) if v in known else len(known), v))


def fmt(x, digits=0):
    return "-" if x is None else f"{x:,.{digits}f}"


def errors_of(result):
    kinds = result.get("errors_by_kind") or {}
    total = sum(kinds.values())
    text = "0" if not total else f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()) if v) + ")"
    if result.get("warmup_errors"):
        text += f"; warm-up errors {result['warmup_errors']}"
    return text


def load(path):
    runs = {}  # (case, server) -> list of result dicts or error strings
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
            runs.setdefault((rec["case"], rec["server"]), []).append(rec.get("result") or rec.get("error", "?"))
    return runs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    cases = order({c for c, _ in runs}, CASE_ORDER)
    servers = order({s for _, s in runs}, SERVER_ORDER)

    def clean(r):
        """A run that served nothing, or whose errors exceed 1% of its requests,
        measured something else."""
        if r is None or not r.get("ok"):
            return None
        errors = sum((r.get("errors_by_kind") or {}).values())
        return r if errors <= 0.01 * max(r.get("requests") or 0, 1) else None

    def best(case, server):
        ok = [r for r in runs.get((case, server), []) if isinstance(r, dict)]
        return max(ok, key=lambda r: r.get("rps_per_cpu_s") or 0, default=None)

    header = ["scenario", "server", "rps", "p99 ms", "rps/CPU-s", "runs rps/CPU-s",
              "peak RSS MiB", "errors", "Latchkey/peer"]
    rows = []
    for case in cases:
        peer = clean(best(case, PEER))
        norotate = clean(best(case, NOROTATE))
        for server in servers:
            results = runs.get((case, server))
            if not results:
                continue
            b = best(case, server)
            if b is None:
                rows.append([case, server, "-", "-", "-", "-", "-", "failed: " + str(results[-1])[:60], ""])
                continue
            ratio = ""
            if server.startswith("latchkey") and b.get("rps_per_cpu_s"):
                parts = []
                for name, other in ((None, peer), ("no-rotate", norotate)):
                    if other and other.get("rps_per_cpu_s"):
                        r = b["rps_per_cpu_s"] / other["rps_per_cpu_s"]
                        parts.append(f"{r:.2f}x" + (f" vs {name}" if name else ""))
                if parts:
                    ratio = ", ".join(parts)
                elif (case, PEER) in runs:
                    ratio = "n/a: no clean peer run"
                else:
                    ratio = "n/a: peer cannot"
            every = " / ".join(fmt(r.get("rps_per_cpu_s")) if isinstance(r, dict) else "failed" for r in results)
            rows.append([
                case, server, fmt(b.get("rps")), fmt((b.get("latency_ms") or {}).get("p99"), 2),
                fmt(b.get("rps_per_cpu_s")), every, fmt(b.get("peak_rss_mib"), 1), errors_of(b), ratio,
            ])

    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    numeric = {2, 3, 4, 6}
    line = lambda cells: "  ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print(line(header))
    print(line(["-" * w for w in widths]))
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            print()
        print(line(row if row[0] != previous else [""] + row[1:]))
        previous = row[0]
    print()
    print("rps/CPU-s: ok requests per CPU-second of the server process (--pid); a row shows the best")
    print("run, 'runs' every run. Latchkey/peer divides the best figures. Server on CPU 0, load on CPU 1.")
    print("'peer cannot': oidc-provider refuses to introspect or revoke JWT access tokens.")
    if "latchkey-postgres" in servers:
        print("latchkey-postgres: only Latchkey's own CPU is counted. PostgreSQL's processes, which do")
        print("the storage work, are neither measured nor pinned, so its figures flatter it.")


if __name__ == "__main__":
    main()
