"""``make bench``: run every benchmark and print one table. Not a test: figures, not assertions.

Set NOTIFLOW_BENCH_ONLY=import,stats to run a subset.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench import import_clients, stats
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
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
