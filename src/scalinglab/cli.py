"""The ``scalinglab`` command: release, check and grade exercises; run long sweeps.

Run ``scalinglab --help`` (or ``scalinglab COMMAND --help``) for the commands, their
arguments and examples. Building the parser imports nothing heavy (no torch, no nbgrader):
each command imports what it needs when it runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

DESCRIPTION = """\
The command line of the course "Why deep learning scales": release, check and grade the
nbgrader exercises, and run the long training sweeps whose records ship with the package.
Run "scalinglab COMMAND --help" for the arguments and examples of a command."""

EPILOG = """\
students:
  scalinglab start 01-softmax-cross-entropy   # your copy: work/01-softmax-cross-entropy/
  scalinglab validate work/01-softmax-cross-entropy/01-softmax-cross-entropy.ipynb

instructors:
  scalinglab list
  scalinglab release --all                    # regenerate exercises/ from solutions/
  scalinglab grade 01-softmax-cross-entropy   # every submitted/STUDENT/01-.../*.ipynb
  scalinglab similarity 01-softmax-cross-entropy   # HTML report, most similar first
  nbgrader export                             # the gradebook as grades.csv
  scalinglab sweep CONFIG.json --out RECORDS.jsonl"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and epilogs printed as written; ``(default: X)`` after each option's help.

    Defaults that say nothing (``None``, ``False`` of a flag, an empty list) are left out:
    the help text then says what happens without the option.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], ()) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def _version() -> str:
    """The course's version (one source: ``scalinglab.__version__``, also the book's footer)."""
    from scalinglab import __version__

    return __version__


def _known_assignment(course, name: str, command: str) -> bool:
    """Print a one-line error naming the known assignments if ``name`` is not one."""
    known = course.assignments()
    if name in known:
        return True
    print(
        f"scalinglab {command}: error: unknown assignment {name!r}; known: {', '.join(known)}",
        file=sys.stderr,
    )
    return False


def _cmd_list(args) -> int:
    from scalinglab.grading import Course

    for name in Course.locate().assignments():
        print(name)
    return 0


def _cmd_release(args) -> int:
    from scalinglab.grading import Course, release
    from scalinglab.grading.release import WouldDiscardWork

    course = Course.locate()
    names = course.assignments() if args.all else args.assignments
    if not names:
        print("scalinglab release: error: name an assignment or pass --all", file=sys.stderr)
        return 2
    if not all(_known_assignment(course, name, "release") for name in names):
        return 2
    for name in names:
        try:
            released = release(name, course, force=args.force)
        except WouldDiscardWork as exc:
            print(f"scalinglab release: error: {exc}", file=sys.stderr)
            return 1
        for nb in released:
            print(f"released {nb.relative_to(course.root)}")
    return 0


def _cmd_start(args) -> int:
    import shutil

    from scalinglab.grading import Course

    course = Course.locate()
    if not _known_assignment(course, args.assignment, "start"):
        return 2
    source = course.release_dir / args.assignment
    # relative to the course, not to wherever the student stands (from work/ itself, a
    # relative WORK_DIR made work/work/...)
    target = (course.root / args.dir / args.assignment).resolve()
    existing = sorted(target.glob("*.ipynb"))
    if existing and not args.force:
        print(
            f"scalinglab start: error: {existing[0]} exists (your work?); "
            "keep working there, or pass --force to start again from the exercise",
            file=sys.stderr,
        )
        return 1
    target.mkdir(parents=True, exist_ok=True)
    for nb in sorted(source.glob("*.ipynb")):
        shutil.copy(nb, target / nb.name)
        shown = _shown_path(target / nb.name)
        print(f"your copy: {shown}")
        print(f"check it with: {_invocation()} validate {shown}")
    return 0


def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder where it lies below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _invocation() -> str:
    """The command as the user must type it: ``scalinglab`` if that is what the shell
    finds, else the path of this program (``.venv/bin/scalinglab`` when the course's
    virtual environment is not active)."""
    import shutil

    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    found = shutil.which("scalinglab")
    if me is None or me.name != "scalinglab" or (found and Path(found).resolve() == me):
        return "scalinglab"
    return _shown_path(me)


def _cmd_validate(args) -> int:
    from scalinglab.grading.check import NotebookError, check_notebook, format_results
    from scalinglab.grading.student import StartError

    status = 0
    for notebook in args.notebooks:
        print(f"== {notebook}")
        try:
            results = check_notebook(notebook, cell_timeout=args.cell_timeout)
        except (NotebookError, StartError) as exc:
            print(f"scalinglab validate: error: {exc}", file=sys.stderr)
            status = 2
            continue
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
    from scalinglab.grading.sandbox import available

    course = Course.locate()
    if not _known_assignment(course, args.assignment, "grade"):
        return 2
    if not args.unsandboxed:
        ok, why = available()
        if not ok:
            print(
                f"scalinglab grade: error: no sandbox for the students' code: {why}. "
                "Install bubblewrap, or pass --unsandboxed to grade trusted work without it.",
                file=sys.stderr,
            )
            return 2
    if args.submissions:
        pairs = [_parse_submission(s) for s in args.submissions]
    else:
        pairs = collect_submissions(
            course, args.assignment, warn=lambda m: print(f"warning: {m}", file=sys.stderr)
        )
    if not pairs:
        print(
            f"scalinglab grade: error: no submissions of {args.assignment} found "
            f"(looked for {course.root / 'submitted'}/STUDENT/{args.assignment}/*.ipynb)",
            file=sys.stderr,
        )
        return 2
    jobs = args.jobs or os.cpu_count() or 1
    # summaries sorted by student after the batch (the progress bar shows it advancing)
    reports = grade_submissions(
        args.assignment,
        pairs,
        gradebook=args.db_url or args.gradebook,
        course=course,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        sandbox=not args.unsandboxed,
        limits={
            "memory_bytes": int(args.memory_limit * 2**30),
            "processes": args.process_limit,
        },
        jobs=jobs,
        feedback_root=None if args.no_feedback else course.root,
        progress=sys.stderr.isatty(),
    )
    for report in sorted(reports, key=lambda r: r.student):
        print(report.summary(), flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["student", "assignment", "score", "max_score", "error"])
            for r in reports:
                writer.writerow([r.student, r.assignment, r.score, r.max_score, r.error or ""])
    failed = [r for r in reports if r.error]
    if failed:
        print(f"{len(failed)} submission(s) could not be fully graded (scored as shown)")
    if not args.no_feedback:
        print(
            f"feedback for students: {course.root / 'feedback'}/STUDENT/{args.assignment}/; "
            f"autograded notebooks: {course.root / 'autograded'}/"
        )
    return 1 if failed else 0


def _cmd_similarity(args) -> int:
    from scalinglab.grading import Course
    from scalinglab.grading.gradebook import collect_submissions
    from scalinglab.grading.similarity import similarity_report

    course = Course.locate()
    if not _known_assignment(course, args.assignment, "similarity"):
        return 2
    if args.submissions:
        pairs = [_parse_submission(s) for s in args.submissions]
    else:
        pairs = collect_submissions(
            course, args.assignment, warn=lambda m: print(f"warning: {m}", file=sys.stderr)
        )
    if len(pairs) < 1:
        print(
            f"scalinglab similarity: error: no submissions of {args.assignment} found",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out or f"similarity-{args.assignment}.html")
    ranked = similarity_report(args.assignment, pairs, out, course)
    for pair in ranked[: args.top]:
        print(
            f"{max(pair.similarity, pair.other_similarity):6.0%}  {pair.student} ~ {pair.other}"
            f"  ({pair.similarity:.0%} of {pair.student}, {pair.other_similarity:.0%} of "
            f"{pair.other})"
        )
    print(f"report (most similar first, shared code highlighted): {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalinglab", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    from scalinglab import sweep_cli  # light: torch is imported when a sweep runs

    # CommandParser: "sweep CONFIG" and "sweep merge ..." share the name (see its docstring)
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        title="commands",
        parser_class=sweep_cli.CommandParser,
    )

    def add(name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            formatter_class=HelpFormatter,
        )

    p = add(
        "list",
        "list the assignments",
        "Print the name of every assignment (a folder of solutions/), one per line.",
        "example:\n  scalinglab list",
    )
    p.set_defaults(func=_cmd_list)

    p = add(
        "release",
        "regenerate exercises/ from solutions/ (instructors)",
        "Generate the student version of assignments into exercises/ with nbgrader: solutions\n"
        "replaced by stubs, hidden tests removed, outputs cleared.",
        "examples:\n  scalinglab release 01-softmax-cross-entropy\n  scalinglab release --all",
    )
    p.add_argument(
        "assignments",
        nargs="*",
        metavar="ASSIGNMENT",
        help="assignment to release, e.g. 01-softmax-cross-entropy (see: scalinglab list)",
    )
    p.add_argument("--all", action="store_true", help="release every assignment")
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite released notebooks even where they hold someone's work",
    )
    p.set_defaults(func=_cmd_release)

    p = add(
        "start",
        "copy an exercise into your work folder (students)",
        "Copy the exercise notebook of an assignment to WORK_DIR/ASSIGNMENT/, a folder git\n"
        "ignores, and work there: exercises/ is regenerated by the course and would lose\n"
        "your changes.",
        "example:\n  scalinglab start 01-softmax-cross-entropy\n"
        "  jupyter lab work/01-softmax-cross-entropy/01-softmax-cross-entropy.ipynb",
    )
    p.add_argument("assignment", help="e.g. 01-softmax-cross-entropy (see: scalinglab list)")
    p.add_argument(
        "--dir",
        default="work",
        metavar="WORK_DIR",
        help="where your copies live (relative to the course folder)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace an existing copy (its work is lost)"
    )
    p.set_defaults(func=_cmd_start)

    p = add(
        "validate",
        "run a notebook and show which graded parts pass",
        "Execute notebooks from top to bottom and report, for each graded part, whether its\n"
        "visible tests pass and how many points it is worth. Exit status 1 if a part fails.",
        "example:\n"
        "  scalinglab validate exercises/01-softmax-cross-entropy/01-softmax-cross-entropy.ipynb",
    )
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="notebook file (.ipynb)")
    p.add_argument(
        "--cell-timeout",
        type=float,
        default=300,
        metavar="SECONDS",
        help="stop a cell that runs longer than this",
    )
    p.set_defaults(func=_cmd_validate)

    p = add(
        "grade",
        "autograde submissions into the gradebook (instructors)",
        "Grade the submissions of one assignment with the hidden tests, each in an isolated\n"
        "process, and record the scores in the nbgrader gradebook.",
        "examples:\n"
        "  # every submitted/STUDENT/01-softmax-cross-entropy/*.ipynb\n"
        "  scalinglab grade 01-softmax-cross-entropy\n"
        "  # named files, scores also written to a CSV file\n"
        "  scalinglab grade 01-softmax-cross-entropy alice=alice.ipynb bob.ipynb --csv scores.csv",
    )
    p.add_argument(
        "assignment",
        help="assignment to grade, e.g. 01-softmax-cross-entropy (see: scalinglab list)",
    )
    p.add_argument(
        "submissions",
        nargs="*",
        metavar="SUBMISSION",
        help="STUDENT=NOTEBOOK.ipynb, or NOTEBOOK.ipynb for the student named like the file "
        "(default: every submitted/STUDENT/ASSIGNMENT/*.ipynb)",
    )
    p.add_argument(
        "--gradebook", default="gradebook.db", metavar="FILE", help="nbgrader SQLite gradebook"
    )
    p.add_argument(
        "--db-url",
        metavar="URL",
        help="the gradebook as an SQLAlchemy URL instead of --gradebook, e.g. "
        "postgresql://grader@dbhost/course (then: nbgrader export --db=URL)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=900,
        metavar="SECONDS",
        help="time limit for grading one submission",
    )
    p.add_argument(
        "--cell-timeout",
        type=float,
        metavar="SECONDS",
        help="time limit for one cell (default: Execute.timeout of nbgrader_config.py)",
    )
    p.add_argument(
        "--csv", metavar="FILE", help="also write the scores to this CSV file (default: none)"
    )
    p.add_argument(
        "--memory-limit",
        type=float,
        default=4,
        metavar="GIB",
        help="memory of a submission's sandbox, in GiB: all its processes together where a "
        "memory cgroup can be made (as root), else each process",
    )
    p.add_argument(
        "--process-limit",
        type=int,
        default=256,
        metavar="N",
        help="processes and threads a submission may run at once",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="submissions graded at once (default: the number of CPU cores)",
    )
    p.add_argument(
        "--no-feedback",
        action="store_true",
        help="do not write autograded/ notebooks and feedback/ HTML files",
    )
    p.add_argument(
        "--unsandboxed",
        action="store_true",
        help="run the students' code without the OS sandbox (bubblewrap): only for trusted "
        "notebooks or a machine without bubblewrap; verdicts are still decided outside the "
        "students' code, but their code can read and write what you can",
    )
    p.set_defaults(func=_cmd_grade)

    p = add(
        "similarity",
        "compare submissions with each other and the public solution (instructors)",
        "Compare the solution cells of every submission of an assignment with every other\n"
        "and with the course's public solution (copydetect: winnowed fingerprints, names\n"
        "normalised, the released stubs ignored), and write an HTML report with the pairs\n"
        "ranked by similarity. It is evidence for the instructor to judge, not a penalty.",
        "examples:\n"
        "  scalinglab similarity 01-softmax-cross-entropy   # every submitted/STUDENT/...\n"
        "  scalinglab similarity 01-softmax-cross-entropy alice=a.ipynb bob=b.ipynb "
        "--out report.html",
    )
    p.add_argument("assignment", help="e.g. 01-softmax-cross-entropy (see: scalinglab list)")
    p.add_argument(
        "submissions",
        nargs="*",
        metavar="SUBMISSION",
        help="STUDENT=NOTEBOOK.ipynb or NOTEBOOK.ipynb "
        "(default: every submitted/STUDENT/ASSIGNMENT/*.ipynb)",
    )
    p.add_argument(
        "--out", metavar="FILE", help="the HTML report (default: similarity-ASSIGNMENT.html)"
    )
    p.add_argument("--top", type=int, default=10, metavar="N", help="pairs printed here")
    p.set_defaults(func=_cmd_similarity)

    sweep_cli.register(sub, formatter_class=HelpFormatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"scalinglab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
