"""How long the report takes to render at scale: a 200-trial run, rendered several times.

The run is tests.synth.big_run (10 configs x 10 levels x 2 repeats, 10 Hz samples over
~1800 s, ~1000 per-request records a trial). Each render starts from the stored folder
(``load_run`` then ``render``, as ``bench report`` does, without the process start-up) and
prints its wall time; then the median, min and max, the page's size, and the target: under
5 s on 2 cores. The unit test (tests/unit/test_report.py) checks the page's size and
contents, not this time, which a busy machine would make flaky.

    .venv/bin/python -m benchmarks.report_render [--renders 5]   # from the checkout's root
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness import report
from harness.results import load_run
from tests.synth import big_run

#: The render time a 200-trial report should stay under on 2 cores (s).
TARGET_S = 5.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--renders", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = big_run(Path(tmp))
        out = Path(tmp) / "big.html"
        times = []
        for i in range(args.renders):
            started = time.perf_counter()
            report.render([load_run(folder)], out, target_rps=5000)
            times.append(time.perf_counter() - started)
            print(f"render {i + 1}: {times[-1]:.2f} s")
        size_mb = out.stat().st_size / 1e6
    print(f"200-trial report, {size_mb:.2f} MB: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}) over {len(times)} renders; "
          f"target < {TARGET_S:g} s")


if __name__ == "__main__":
    main()
