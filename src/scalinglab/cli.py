"""The ``scalinglab`` command: release, check and grade exercises; run long sweeps.

Students::

    scalinglab validate exercises/01-softmax-cross-entropy/01-softmax-cross-entropy.ipynb

Instructors::

    scalinglab list
    scalinglab release --all                       # regenerate exercises/ from solutions/
    scalinglab grade 01-softmax-cross-entropy      # every submitted/<student>/01-.../*.ipynb
    scalinglab grade 01-softmax-cross-entropy alice=path/to/alice.ipynb --csv grades.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def _cmd_list(args) -> int:
    from scalinglab.grading import Course

    for name in Course.locate().assignments():
        print(name)
    return 0


def _cmd_release(args) -> int:
    from scalinglab.grading import Course, release

    course = Course.locate()
    names = course.assignments() if args.all else args.assignments
    if not names:
        print("name an assignment or pass --all", file=sys.stderr)
        return 2
    for name in names:
        for nb in release(name, course):
            print(f"released {nb.relative_to(course.root)}")
    return 0


def _cmd_validate(args) -> int:
    from scalinglab.grading.check import check_notebook, format_results

    status = 0
    for notebook in args.notebooks:
        print(f"== {notebook}")
        results = check_notebook(notebook, cell_timeout=args.cell_timeout)
        print(format_results(results))
        if not results or not all(r.passed for r in results):
            status = 1
    return status


def _parse_submission(item: str) -> tuple[str, Path]:
    """``student=path`` or a bare path (the student id is then the file's stem)."""
    if "=" in item:
        student, path = item.split("=", 1)
        return student, Path(path)
    return Path(item).stem, Path(item)


def _cmd_grade(args) -> int:
    from scalinglab.grading import Course, grade_submissions
    from scalinglab.grading.gradebook import collect_submissions

    course = Course.locate()
    if args.submissions:
        pairs = [_parse_submission(s) for s in args.submissions]
    else:
        pairs = collect_submissions(course, args.assignment)
    if not pairs:
        print(f"no submissions found for {args.assignment}", file=sys.stderr)
        return 2
    reports = grade_submissions(
        args.assignment,
        pairs,
        gradebook=args.gradebook,
        course=course,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        on_report=lambda r: print(r.summary(), flush=True),
    )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["student", "assignment", "score", "max_score", "error"])
            for r in reports:
                writer.writerow([r.student, r.assignment, r.score, r.max_score, r.error or ""])
    failed = [r for r in reports if r.error]
    if failed:
        print(f"{len(failed)} submission(s) could not be fully graded (scored as shown)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalinglab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the assignments")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("release", help="regenerate exercises/ from solutions/ (instructors)")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--all", action="store_true", help="every assignment")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("validate", help="run a notebook and show which graded parts pass")
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--cell-timeout", type=float, default=300)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("grade", help="autograde submissions into the gradebook (instructors)")
    p.add_argument("assignment")
    p.add_argument(
        "submissions",
        nargs="*",
        help="student=notebook.ipynb or notebook.ipynb; default: submitted/*/ASSIGNMENT/*.ipynb",
    )
    p.add_argument("--gradebook", default="gradebook.db", help="nbgrader SQLite gradebook")
    p.add_argument("--timeout", type=float, default=900, help="seconds per submission")
    p.add_argument("--cell-timeout", type=float, help="seconds per cell (nbgrader_config.py)")
    p.add_argument("--csv", help="also write the scores to this CSV file")
    p.set_defaults(func=_cmd_grade)

    try:
        from scalinglab import sweep_cli
    except ImportError:  # the engine is optional for the grading tools
        pass
    else:
        sweep_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
