"""``make bench``: run every benchmark and print one table. Not a test: figures, not assertions.

Set NOTIFLOW_BENCH_ONLY to a comma-separated subset of
import, stats, timeline, send, rss, scale, materialise, start, side.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench import delivery, import_clients, side_by_side, stats, timeline
from bench.common import Row, print_table


def main() -> int:
    only = {name for name in os.environ.get("NOTIFLOW_BENCH_ONLY", "").split(",") if name}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="notiflow-bench-") as tmp:
        workdir = Path(tmp)
        if not only or "import" in only:
            for kind in ("sqlite", "postgres"):
                rows += import_clients.run(kind, workdir)
                print(f"  done: import on {kind}", file=sys.stderr)
        if not only or "stats" in only:
            rows += stats.run(workdir)
            print("  done: stats", file=sys.stderr)
        if not only or "timeline" in only:
            for kind in ("sqlite", "postgres"):
                rows += timeline.run(kind, workdir)
            print("  done: timeline", file=sys.stderr)
        if not only or "send" in only:
            rows += delivery.throughput("postgres", workdir, 0)
            rows += delivery.throughput("postgres", workdir, 50, send_concurrency=512)
            rows += delivery.throughput("sqlite", workdir, 0)
            print("  done: send", file=sys.stderr)
        if not only or "rss" in only:
            rows += delivery.rss_large(workdir)
            print("  done: rss", file=sys.stderr)
        if not only or "scale" in only:
            rows += delivery.scale_out(workdir, 50, 128)
            # Both workers, the sandbox and PostgreSQL share 2 cores here: CPU-bound, reported.
            rows += delivery.scale_out(workdir, 0, 256, target=False)
            print("  done: scale", file=sys.stderr)
        if not only or "materialise" in only:
            rows += delivery.materialise(workdir)
            print("  done: materialise", file=sys.stderr)
        if not only or "start" in only:
            rows += delivery.start_latency(workdir)
            print("  done: start", file=sys.stderr)
    if not only or "side" in only:
        rows += side_by_side.run()
        print("  done: side by side", file=sys.stderr)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
