"""Time every chapter page and every solution notebook against the course budgets.

Budgets (COURSE.md): a page <= 60 s, an exercise <= 120 s, the whole book and all
solutions <= 10 min each, on 2 CPU cores. This is a measurement, not a test: run it on an
otherwise idle machine,

    python benchmarks/bench_course.py            # pages and solutions
    python benchmarks/bench_course.py --pages    # pages only

and it prints one line per notebook (seconds, share of its budget) and the totals.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from scalinglab.syllabus import toc_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
from course_book import encrypt_kernel_transport  # noqa: E402

encrypt_kernel_transport()  # no "Kernel is running over TCP without encryption" per notebook
PAGE_BUDGET, EXERCISE_BUDGET, TOTAL_BUDGET = 60.0, 120.0, 600.0


def run(nb, cwd: Path) -> float:
    """Execute a notebook; return its wall-clock seconds (kernel start included)."""
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return time.perf_counter() - start


def pages() -> list[Path]:
    return [ROOT / f"{name}.md" for name in toc_files(ROOT)]


def solutions() -> list[Path]:
    return sorted((ROOT / "solutions").glob("*/*.ipynb"))


def report(kind: str, items: list[Path], load, budget: float) -> float:
    total = 0.0
    for path in items:
        seconds = run(load(path), path.parent)
        total += seconds
        print(
            f"{kind:9s} {path.relative_to(ROOT)!s:60s} {seconds:6.1f} s  ({seconds / budget:4.0%} of {budget:.0f} s)",
            flush=True,
        )
    print(
        f"{kind:9s} total {total:.1f} s ({total / TOTAL_BUDGET:.0%} of {TOTAL_BUDGET:.0f} s)\n",
        flush=True,
    )
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", action="store_true", help="only the book pages")
    parser.add_argument("--solutions", action="store_true", help="only the solution notebooks")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(f"{os.cpu_count()} CPU cores; python {sys.version.split()[0]}\n")
    if not args.solutions:
        report("page", [p for p in pages() if p.exists()], jupytext.read, PAGE_BUDGET)
    if not args.pages:
        os.environ["NBGRADER_EXECUTION"] = "autograde"  # as when graded
        report("solution", solutions(), lambda p: nbformat.read(p, 4), EXERCISE_BUDGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
