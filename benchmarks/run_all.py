"""Run every benchmark script and print their markdown one after the other.

    python benchmarks/run_all.py [--fast] [--threads N] [--repeats R] [--output FILE]

Each script runs in its own process (a clean heap, its own XLA flags), with the same
options; the combined markdown goes to stdout and, with ``--output``, to a file.
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "throughput.py",
    "numerics.py",
    "svi_cost.py",
    "gradient_quality.py",
    "estimators.py",
    "multi_sample.py",
    "numpyro_floors.py",
    "peers.py",
)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="also write the markdown here")
    args, passthrough = parser.parse_known_args()
    command = " ".join(["python", "benchmarks/run_all.py", *sys.argv[1:]])
    parts = [
        f"Measured {datetime.date.today().isoformat()} with `{command}` on "
        f"{cpu_name()}, {os.cpu_count()} cores (shared).\n"
    ]
    print(parts[0], flush=True)
    failed = []
    for script in SCRIPTS:
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(HERE / script), *passthrough],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        print(result.stdout, flush=True)
        print(f"({script}: {elapsed:.0f} s, exit status {result.returncode})\n", flush=True)
        parts.append(result.stdout)
        if result.returncode != 0:
            failed.append(script)
    if args.output:
        args.output.write_text("\n".join(parts))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
