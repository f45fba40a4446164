"""How fast the grader grades: one submission, and a class with ``--jobs 1`` and ``--jobs 2``.

    python benchmarks/bench_grading.py                  # 6 submissions of chapter 1
    python benchmarks/bench_grading.py --submissions 10 --assignment 03-intrinsic-dimension

Grades copies of the assignment's solution (full marks expected) into a throw-away gradebook
and prints wall-clock seconds per submission and submissions per minute for each number of
jobs, and the ratio. It sandboxes the students' code where bubblewrap works (as
`scalinglab grade` does) and says so. A benchmark, not a test: numbers depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from scalinglab.grading import Course, autograde, grade_submissions, source_notebook_path
from scalinglab.grading.sandbox import available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="01-softmax-cross-entropy")
    parser.add_argument("--submissions", type=int, default=6)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    course = Course.locate()
    sandbox, why = available()
    print(f"sandbox: {'bubblewrap' if sandbox else 'none (' + why + ')'}; cores: {os.cpu_count()}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    source = source_notebook_path(args.assignment, course)

    started = time.perf_counter()
    report = autograde(source, args.assignment, course, sandbox=sandbox)
    single = time.perf_counter() - started
    print(
        f"one full solution: {report.score:g} / {report.max_score:g} points in {single:.1f} s "
        f"(the autograde call, worker start included)"
    )

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pairs = []
        for i in range(args.submissions):
            copy = tmp / f"s{i}.ipynb"
            shutil.copy(source, copy)
            pairs.append((f"s{i}", copy))
        for jobs in args.jobs:
            started = time.perf_counter()
            reports = grade_submissions(
                args.assignment, pairs, gradebook=tmp / f"gb{jobs}.db", course=course,
                jobs=jobs, sandbox=sandbox,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            assert all(r.score == r.max_score for r in reports), [r.summary() for r in reports]
            rates[jobs] = 60 * len(pairs) / elapsed
            print(
                f"--jobs {jobs}: {len(pairs)} submissions in {elapsed:.1f} s = "
                f"{rates[jobs]:.1f} submissions/min ({elapsed / len(pairs):.1f} s each)"
            )
    if len(rates) > 1:
        low, high = min(rates), max(rates)
        print(f"--jobs {high} / --jobs {low}: {rates[high] / rates[low]:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
