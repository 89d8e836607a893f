"""Notiflow against the bare claim → send → write-back loop, side by side.

Runs ``side_by_side.py`` of the shared benchmarks (``NOTIFLOW_SIDE_BY_SIDE``, by default
``../shared/bench/side_by_side.py``): it alternates the bare loop and ``notiflow serve`` against
one nginx static provider and the same PostgreSQL, and prints the medians and their ratio.
Needs nginx; skipped, and said so, where the script or nginx is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(os.environ.get("NOTIFLOW_SIDE_BY_SIDE", ROOT.parent / "shared/bench/side_by_side.py"))
SUMMARY = re.compile(r"bare (\d+) msg/s, notiflow (\d+) msg/s, ratio ([\d.]+)")
TARGET = 0.85


def run(messages: int = 100_000, rounds: int = 2) -> list[Row]:
    name = f"delivery vs the bare loop, {messages:,} messages, nginx provider, medians of {rounds}"
    if not SCRIPT.exists() or shutil.which("nginx") is None:
        missing = "nginx" if SCRIPT.exists() else str(SCRIPT)
        return [Row(name, "postgres", f"skipped: {missing} not found", f"≥ {TARGET}")]
    venv = Path(sys.prefix)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(venv), str(messages), str(rounds)],
        capture_output=True,
        text=True,
        check=True,
    )
    match = SUMMARY.search(out.stdout)
    if match is None:
        raise RuntimeError(f"unexpected output of {SCRIPT}:\n{out.stdout}\n{out.stderr}")
    bare, notiflow, ratio = int(match[1]), int(match[2]), float(match[3])
    value = f"{notiflow:,} vs {bare:,} msg/s: ratio {ratio:.2f}"
    return [Row(name, "postgres", value, f"≥ {TARGET}", ratio >= TARGET)]
