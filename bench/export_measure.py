#!/usr/bin/env python3
"""export_measure.py - times `aei trace export` of one execution from a running aeid while sampling
aeid's resident memory (VmRSS in /proc/PID/status) every 10 ms, a few runs per format; writes
the runs and their medians as JSON. Used by scripts/bench-export.sh.

Usage: export_measure.py --aei AEI --pid PID --server HOST:PORT --execution ID --decisions N
                         --runs R --dir DIR --out OUT.json
Each run's baseline is aeid's RSS just before it starts (the median of 20 samples over 200 ms);
its growth is the highest sample during the export minus that baseline.
"""
import argparse
import json
import os
import statistics
import subprocess
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Sampler(threading.Thread):
    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.interval, self.samples, self.stop = pid, interval, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append(rss_kib(self.pid))
            time.sleep(self.interval)


def complete(path, fmt, n):
    """Checks that the document holds all n decisions and ends as it should."""
    if fmt == "json":
        # One decision per line between "[" and "]": each line is parsed, one at a time.
        count, last = 0, ""
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("{"):
                    json.loads(line.rstrip(","))
                    count += 1
                last = line or last
        return count == n and last == "]"
    with open(path, "rb") as f:
        f.seek(-200, os.SEEK_END)
        return f"_{n} decisions exported from aeid._".encode() in f.read()


def one_run(a, fmt, i):
    path = os.path.join(a.dir, f"export-{i}.{'json' if fmt == 'json' else 'md'}")
    base = []
    for _ in range(20):
        base.append(rss_kib(a.pid))
        time.sleep(0.01)
    baseline = int(statistics.median(base))
    s = Sampler(a.pid)
    s.start()
    t0 = time.monotonic()
    p = subprocess.run([a.aei, "trace", "export", a.execution, "--format", fmt, "--server",
                        a.server, "-o", path], capture_output=True, text=True)
    secs = time.monotonic() - t0
    s.stop.set()
    s.join()
    if p.returncode != 0:
        raise SystemExit(f"export_measure.py: aei trace export failed: {p.stderr.strip()}")
    size = os.path.getsize(path)
    ok = complete(path, fmt, a.decisions) if i == 0 else None
    os.unlink(path)
    peak = max(s.samples + [baseline])
    return {"format": fmt, "run": i + 1, "seconds": round(secs, 3), "bytes": size,
            "baseline_rss_kib": baseline, "peak_rss_kib": peak,
            "peak_growth_kib": peak - baseline, "samples": len(s.samples),
            "verified_complete": ok}


def main():
    ap = argparse.ArgumentParser()
    for opt in ("aei", "server", "execution", "dir", "out"):
        ap.add_argument("--" + opt, required=True)
    for opt in ("pid", "decisions", "runs"):
        ap.add_argument("--" + opt, type=int, required=True)
    a = ap.parse_args()
    result = {"decisions": a.decisions, "runs": a.runs, "formats": {}}
    for fmt in ("json", "markdown"):
        runs = [one_run(a, fmt, i) for i in range(a.runs)]
        if runs[0]["verified_complete"] is False:
            raise SystemExit(f"export_measure.py: the {fmt} export is incomplete")
        result["formats"][fmt] = {
            "runs": runs,
            "median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_bytes": statistics.median(r["bytes"] for r in runs),
            "median_peak_growth_kib": statistics.median(r["peak_growth_kib"] for r in runs),
            "max_peak_growth_kib": max(r["peak_growth_kib"] for r in runs),
            "median_baseline_rss_kib": statistics.median(r["baseline_rss_kib"] for r in runs),
        }
        m = result["formats"][fmt]
        print(f"   {fmt}: {m['median_seconds']:.2f} s, {m['median_bytes'] / 1e6:.1f} MB, "
              f"peak RSS growth {m['median_peak_growth_kib'] / 1024:.1f} MiB (median of {a.runs}; "
              f"max {m['max_peak_growth_kib'] / 1024:.1f})", flush=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
