"""Run every benchmark, one after another, each printing its table (``tox -e bench``).

Each script runs in its own process (a clean interpreter: no cache or thread of one
benchmark disturbs the next). ``--quick`` passes the scripts' smoke mode through;
``--only NAME[,NAME]`` picks some. Exit status: non-zero if any script failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: In the order of the targets they measure (issue 7: 1 decisions ... 6 memory).
SCRIPTS = ("decisions", "rpc", "listing", "create", "reload", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every script's smoke mode")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCRIPTS)
    unknown = sorted(set(chosen) - set(SCRIPTS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    failed: list[str] = []
    for name in chosen:
        print(f"\n##### {name}", flush=True)
        began = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else [])])
        print(f"##### {name}: exit {code} in {time.perf_counter() - began:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
