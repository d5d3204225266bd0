"""The quick series on the real photos, notebook by notebook: seconds each, in one command.

Runs ``python -m course_tools.run`` (what ``make run`` does: each notebook in a fresh kernel, in
order, 06 and 07 reusing 05's model) with the real-photo settings of ``../shared/data`` and a
fresh output folder, so no model of an earlier run is reused. Time it on a quiet machine:

    .venv/bin/python benchmarks/series_time.py                        # cats and dogs
    .venv/bin/python benchmarks/series_time.py --data ../shared/data/flowers-real
    .venv/bin/python benchmarks/series_time.py 04 05                  # only these notebooks

It prints each notebook's seconds and the total, as ``make run`` does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WEIGHTS = SHARED / "keras-models" / "mobilenet_2_5_224_tf_no_top.h5"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "catsdogs-real")
    parser.add_argument("notebooks", nargs="*", help="numbers, e.g. 04 05 (default: all)")
    args = parser.parse_args(argv)
    if not args.data.is_dir() or not WEIGHTS.is_file():
        print(f"needs the real photos ({args.data}) and {WEIGHTS}: not found", file=sys.stderr)
        return 1
    chosen = [str(p) for n in args.notebooks for p in sorted((ROOT / "notebooks").glob(f"{n}_*"))]
    with tempfile.TemporaryDirectory() as output:
        env = {
            **os.environ,
            "TL_PROFILE": "quick",
            "TL_DATA": str(args.data),
            "TL_BACKBONE": "mobilenet",
            "TL_ALPHA": "0.25",
            "TL_WEIGHTS": str(WEIGHTS),
            "TL_IMAGE_SIZE": "224",
            "TL_OUTPUT_DIR": output,
        }
        command = [sys.executable, "-m", "course_tools.run", *chosen]
        return subprocess.run(command, env=env, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
