"""The `scalinglab` command line."""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import scalinglab
from scalinglab.cli import build_parser, main

HEAVY = ("torch", "numpy", "scipy", "sklearn", "nbgrader", "nbclient", "matplotlib", "tqdm")

A = "01-softmax-cross-entropy"


def test_list_names_every_assignment(capsys, course):
    assert main(["list"]) == 0
    assert capsys.readouterr().out.split() == course.assignments()


def test_parser_has_all_commands():
    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"list", "release", "start", "validate", "grade", "sweep"} <= set(sub)


def test_release_rejects_unknown_assignment(capsys):
    assert main(["release", "99-nope"]) == 2
    assert "unknown assignment '99-nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_validate_reports_parts_and_exit_status(tmp_path, course):
    release = course.release_dir / A / f"{A}.ipynb"
    solution = course.source_dir / A / f"{A}.ipynb"
    shutil.copy(release, tmp_path / "student.ipynb")
    shutil.copy(solution, tmp_path / "done.ipynb")
    cmd = [sys.executable, "-m", "scalinglab.cli", "validate"]
    untouched = subprocess.run(
        cmd + [str(tmp_path / "student.ipynb")], capture_output=True, text=True
    )
    assert untouched.returncode == 1
    assert "not attempted" in untouched.stdout and "visible tests: 0 / " in untouched.stdout
    done = subprocess.run(cmd + [str(tmp_path / "done.ipynb")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "[FAIL]" not in done.stdout and "[PASS]" in done.stdout


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return parser._subparsers._group_actions[0].choices


@pytest.mark.parametrize(
    "command", [[], ["sweep"], ["grade"], ["validate"], ["release"], ["start"]]
)
def test_help_imports_nothing_heavy(command):
    """``--help`` must answer at once: no torch, numpy or nbgrader behind it (issue 15)."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "scalinglab.cli", *command, "--help"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: scalinglab")
    # -X importtime writes one line per imported module: "import time: self | cumulative | name"
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


def test_every_argument_has_help_and_plain_text():
    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) == {"list", "release", "start", "validate", "grade", "similarity", "sweep"}
    for name, sub in [("scalinglab", parser), *commands.items()]:
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(a.help for a in action._choices_actions), name
                continue
            assert action.help, f"{name}: {action.dest} has no help"
        text = sub.format_help()
        assert "example" in text, f"{name} --help shows no example"
        # no reStructuredText or Sphinx roles leaking into a terminal
        for markup in ("``", ":func:", ":mod:", ":class:", "::"):
            assert markup not in text, f"{name} --help shows {markup!r}"


def test_help_shows_defaults():
    commands = _subparsers(build_parser())
    grade = commands["grade"].format_help()
    assert "(default: gradebook.db)" in grade and "(default: 900" in grade
    assert "(default: 300" in commands["validate"].format_help()
    assert "(default: None)" not in grade  # a default that says nothing is not shown


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"scalinglab {scalinglab.__version__}\n"


def _outside_main(tree: ast.Module):
    """Every node of a module except those inside its command line: a top-level ``main``
    function and the ``if __name__ == "__main__":`` block."""
    for top in tree.body:
        if isinstance(top, ast.FunctionDef) and top.name == "main":
            continue
        if isinstance(top, ast.If) and "__main__" in ast.unparse(top.test):
            continue
        yield from ast.walk(top)


def test_library_does_not_import_the_command_line():
    """Layering: only the command line (cli, sweep_cli, and a module's own ``main``, the
    entry point of ``python -m scalinglab.MODULE``) may import the command-line modules."""
    package = Path(scalinglab.__file__).parent
    cli_modules = {"scalinglab.cli", "scalinglab.sweep_cli"}
    offenders = []
    for path in package.rglob("*.py"):
        if path.name in ("cli.py", "sweep_cli.py") and path.parent == package:
            continue
        for node in _outside_main(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            if names & cli_modules:
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not offenders


@pytest.mark.parametrize(
    "path",
    [
        "gradebook.db",
        "grades.csv",
        "submitted/alice/01-x/01-x.ipynb",
        "autograded/alice/01-x/01-x.ipynb",
        "feedback/alice/01-x/01-x.html",
        "exchange/why-deep-learning-scales/inbound/x.ipynb",
        "work/01-x/01-x.ipynb",
    ],
)
def test_generated_files_are_ignored_by_git(path):
    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    run = subprocess.run(["git", "check-ignore", "-q", path], cwd=root)
    assert run.returncode == 0, f"{path} is not ignored by .gitignore"


def test_only_the_command_line_parses_arguments():
    """argparse is imported by scalinglab.cli and scalinglab.sweep_cli alone."""
    package = Path(scalinglab.__file__).parent
    users = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                {a.name for a in node.names}
                if isinstance(node, ast.Import)
                else {node.module}
                if isinstance(node, ast.ImportFrom)
                else set()
            )
            if "argparse" in names:
                users.add(str(path.relative_to(package)))
    assert users == {"cli.py", "sweep_cli.py"}
