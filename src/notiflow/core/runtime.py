"""Process settings for the long-running commands (``serve``, ``api``, ``worker``)."""

from __future__ import annotations

import gc

# Collections of the youngest generation after this many new container objects (the default is
# 700). Sending allocates many short-lived objects that reference counting frees at once; with
# the default, the collector ran about 1,500 times in a 100,000-message mailing and took about
# a tenth of the process's time.
GEN0_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Call once everything is imported and built, before serving: what exists then lives as
    long as the process, so it is moved out of the collector's way (``gc.freeze``), and the
    young generation is collected less often."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, middle, oldest)
