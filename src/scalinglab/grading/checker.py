"""Grade a notebook with every verdict decided outside the student's reach.

The student's cells run in a separate interpreter (:mod:`scalinglab.grading.runner`,
inside the OS sandbox when grading). The *test* cells never run there: they run here, in
a namespace of the grader's own, built from the assignment's locked cells (imports, data,
helpers -- the same source code the student's side runs). Every other name a test cell
uses is looked up in the student's interpreter: a function becomes a :class:`StudentFunction`
that calls it remotely with the test's arguments and brings back its result as plain data
(:mod:`scalinglab.grading.wire`); a variable is fetched as plain data. The asserts then run
on those values with the grader's own NumPy, torch and builtins, so nothing the
submission does in its own process -- patching functions, IPython hooks and input
transformers, fake outputs -- can turn a failing check into a passing one.

A part passes when its test cell runs to the end without an exception: warnings and
anything printed do not count against it. Authoring stays as in nbgrader: a graded test
cell holds plain asserts, with hidden ones between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. A line ``# forbid: scalinglab.losses.softmax`` in a test cell
makes the part fail when the student's code calls that function of the package.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import re
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from scalinglab.grading import wire
from scalinglab.grading.notebooks import HIDDEN_BEGIN, HIDDEN_END, nbgrader_meta
from scalinglab.grading.student import StudentDied, StudentProcess, StudentTimeout

FORBID = re.compile(r"^\s*#\s*forbid:\s*(.+?)\s*$", re.M)
MAX_MESSAGE = 500  # characters of an error message kept for a report


@dataclass
class Verdict:
    """The outcome of one graded part."""

    grade_id: str
    points: float
    passed: bool
    message: str = ""  # why it failed (never hidden-test source)
    output: str = ""  # what the visible part of the test printed

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0


@dataclass
class Step:
    kind: str  # "locked" (instructor code, run on both sides), "student", or "test"
    source: str
    grade_id: str | None = None
    points: float = 0.0
    order: float = 0.0  # position in the source notebook, for placing missing cells


@dataclass
class Plan:
    steps: list[Step]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- planning


def plan(submission, source) -> Plan:
    """The cells to run, in the submission's order: the submission's own cells, the
    source's version of every locked cell and graded test (whatever the submission did to
    its copies), and any locked or test cell the submission lost, at its source position.
    A duplicated graded cell is run once; a cell with an unknown ``grade_id`` runs as the
    student's code. ``notes`` says what was repaired."""
    notes: list[str] = []
    trusted: dict[str, Step] = {}
    for index, cell in enumerate(source.cells):
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if cell.cell_type != "code" or not gid:
            continue
        if meta.get("grade") and not meta.get("solution"):
            trusted[gid] = Step("test", cell.source, gid, float(meta.get("points", 0)), index)
        elif meta.get("locked") and not meta.get("solution"):
            trusted[gid] = Step("locked", cell.source, gid, 0.0, index)
    known = {nbgrader_meta(c).get("grade_id") for c in source.cells} - {None}

    steps: list[Step] = []
    seen: set[str] = set()
    last_order = -1.0
    for cell in submission.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in trusted:
            if gid in seen:
                notes.append(f"cell {gid!r} appears more than once: graded once, copies ignored")
                continue
            seen.add(gid)
            step = trusted[gid]
            steps.append(step)
            last_order = step.order
            continue
        if gid and gid not in known:
            notes.append(f"cell with unknown grade_id {gid!r} run as ordinary code")
        steps.append(Step("student", cell.get("source", ""), gid, order=last_order + 0.5))
    for gid, step in trusted.items():
        if gid in seen:
            continue
        notes.append(
            f"{'test' if step.kind == 'test' else 'locked'} cell {gid!r} was missing from the "
            "submission and was restored"
        )
        position = next((i for i, s in enumerate(steps) if s.order > step.order), len(steps))
        steps.insert(position, step)
    return Plan(steps, notes)


# --------------------------------------------------------------------------- proxies


class StudentCodeError(Exception):
    """The student's function raised, returned something that is not plain data, or
    called a forbidden package function."""


_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}


def _student_exception(name: str, error: dict) -> Exception:
    """An exception the test can catch like the original (a builtin exception type keeps
    its type, so ``pytest.raises(ValueError)``-style checks still work)."""
    ename, evalue = error.get("ename", "Exception"), error.get("evalue", "")
    message = f"{name}(...) raised {ename}: {evalue}"
    base = _BUILTIN_EXCEPTIONS.get(ename)
    if base is not None and base is not StudentCodeError:
        try:
            cls = type(f"Student{ename}", (StudentCodeError, base), {})
            return cls(message)
        except TypeError:  # exception types that cannot be combined
            pass
    return StudentCodeError(message)


class StudentFunction:
    """Calls the student's function ``name`` in the student's interpreter."""

    def __init__(self, checker: Checker, name: str):
        self._checker, self._name = checker, name
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self._checker.call_student(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<student function {self._name}>"


# --------------------------------------------------------------------------- checking


class Checker:
    """Runs a plan against one student interpreter and yields a verdict per part."""

    def __init__(
        self,
        student: StudentProcess,
        cell_timeout: float,
        deadline: float,
        on_event: Callable[[dict], None] | None = None,
    ):
        self.student = student
        self.cell_timeout = cell_timeout
        self.deadline = deadline  # time.monotonic() value after which nothing more runs
        self.on_event = on_event or (lambda event: None)
        self.namespace: dict = {"__name__": "__grader__", "__builtins__": builtins}
        self._forbid: list[str] = []
        self._where = ""  # the part being checked, for messages
        self._student_alive = True
        self._death: str | None = None
        self.student_errors: list[str] = []

    # -- talking to the student ----------------------------------------------------------
    def _timeout(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise StudentTimeout("the submission's time limit was reached")
        return min(self.cell_timeout, remaining)

    def _request(self, message: dict, where: str = "") -> dict:
        if not self._student_alive:
            raise StudentDied(self._death or "the student's kernel is not running")
        try:
            return self.student.request(message, self._timeout())
        except StudentDied as exc:
            self._fail(str(exc), where)
            raise
        except StudentTimeout as exc:
            if self.student.proc.poll() is not None or "time limit" in str(exc):
                self._fail(f"timed out ({exc})", where)
            raise

    def _fail(self, what: str, where: str) -> None:
        """The student's kernel is gone: say so once, with where it happened."""
        self._student_alive = False
        if self._death is None:
            self._death = f"{what} {where}".strip()
            self.on_event({"event": "failure", "message": self._death})

    def call_student(self, name: str, args: tuple, kwargs: dict):
        try:
            payload = {
                "op": "call",
                "name": name,
                "args": wire.encode(list(args), allow_pickle=True),
                "kwargs": wire.encode(dict(kwargs), allow_pickle=True),
                "forbid": list(self._forbid),
            }
        except wire.WireError as exc:
            raise StudentCodeError(
                f"the test could not pass its arguments to {name}: {exc}"
            ) from None
        reply = self._request(payload, self._where)
        if reply.get("forbidden"):
            used = ", ".join(reply["forbidden"])
            raise StudentCodeError(
                f"{name} calls {used}, the package's own implementation: this part must "
                "be your own code"
            )
        if not reply.get("ok"):
            raise _student_exception(name, reply.get("error") or {})
        try:
            return wire.decode(reply.get("value"))
        except wire.WireError as exc:
            raise StudentCodeError(
                f"{name} returned a value the grader cannot read: {exc}"
            ) from None

    def run_student_cell(self, source: str, where: str = "") -> dict:
        reply = self._request({"op": "run", "source": source}, where)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            self.student_errors.append(f"{error.get('ename')}: {error.get('evalue', '')}"[:200])
        return reply

    def _bind_student_names(self, tree: ast.AST) -> list[str]:
        """Put proxies/values for the student names ``tree`` uses into the namespace."""
        injected = []
        for name in sorted(_free_names(tree)):
            if name in self.namespace or hasattr(builtins, name):
                continue
            reply = self._request({"op": "resolve", "name": name}, self._where)
            kind = reply.get("kind")
            if kind == "callable":
                self.namespace[name] = StudentFunction(self, name)
            elif kind == "value":
                try:
                    self.namespace[name] = wire.decode(reply.get("value"))
                except wire.WireError as exc:
                    raise StudentCodeError(f"{name} cannot be read by the grader: {exc}") from None
            elif kind == "unsupported":
                raise StudentCodeError(f"{name} cannot be graded: {reply.get('reason')}")
            else:
                continue  # undefined: the test meets a NameError if it needs the name
            injected.append(name)
        return injected

    def _exec_trusted(self, source: str, filename: str) -> str:
        """Run instructor code in the grader's namespace; return what it printed."""
        tree = ast.parse(source, filename)
        injected = self._bind_student_names(tree)
        before = {name: self.namespace[name] for name in injected}
        buffer = io.StringIO()
        try:
            with (
                contextlib.redirect_stdout(buffer),
                contextlib.redirect_stderr(io.StringIO()),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore")
                exec(compile(tree, filename, "exec"), self.namespace)  # noqa: S102 -- trusted
        finally:
            # fetched student values and proxies do not outlive the cell, unless rebound
            for name, value in before.items():
                if self.namespace.get(name) is value:
                    del self.namespace[name]
        return buffer.getvalue()

    # -- the plan ------------------------------------------------------------------------
    def run(self, the_plan: Plan) -> list[Verdict]:
        for note in the_plan.notes:
            self.on_event({"event": "note", "message": note})
        verdicts = []
        for step in the_plan.steps:
            if step.kind == "test":
                self.on_event({"event": "start", "part": step.grade_id})
                verdict = self.check(step)
                verdicts.append(verdict)
                self.on_event(
                    {
                        "event": "verdict",
                        "part": verdict.grade_id,
                        "points": verdict.points,
                        "passed": verdict.passed,
                        "message": verdict.message,
                        "output": verdict.output,
                    }
                )
            elif self._student_alive and time.monotonic() < self.deadline:
                self.run_cell(step)
        return verdicts

    def run_cell(self, step: Step) -> None:
        """A student cell runs on the student's side; a locked cell on both sides."""
        where = f"in cell {step.grade_id!r}" if step.grade_id else "in a cell without grade_id"
        try:
            self.run_student_cell(step.source, where)
        except StudentTimeout as exc:
            self.on_event({"event": "note", "message": f"{where}: {exc}"})
        except StudentDied:
            pass  # reported once by _fail
        if step.kind == "locked":
            try:
                self._exec_trusted(step.source, f"<cell {step.grade_id}>")
            except Exception as exc:  # noqa: BLE001 -- a later test will fail with it
                self.on_event(
                    {"event": "note", "message": f"locked cell {step.grade_id!r}: {exc!r}"[:300]}
                )

    def check(self, step: Step) -> Verdict:
        verdict = Verdict(step.grade_id, step.points, passed=False)
        if not self._student_alive:
            verdict.message = f"not graded: {self._death}"
            return verdict
        self._forbid = [
            name.strip() for line in FORBID.findall(step.source) for name in line.split(",")
        ]
        filename = f"<test {step.grade_id}>"
        hidden = _hidden_line_range(step.source)
        outputs = []
        self._where = f"in part {step.grade_id}"
        try:
            for code, is_hidden in _split_hidden(step.source):
                printed = self._exec_trusted(code, filename)
                if not is_hidden:  # what hidden tests print never reaches a report
                    outputs.append(printed)
            verdict.passed = True
        except StudentTimeout as exc:
            verdict.message = f"timed out in part {step.grade_id}: {exc}"
        except StudentDied as exc:
            verdict.message = (
                f"{exc} in part {step.grade_id}" if self._death is None else str(self._death)
            )
        except Exception as exc:  # noqa: BLE001 -- any failure of the test is the verdict
            verdict.message = _describe_failure(exc, filename, step.source, hidden)
        finally:
            self._forbid, self._where = [], ""
        verdict.output = "".join(outputs)[-4000:]
        return verdict


def _split_hidden(source: str) -> list[tuple[str, bool]]:
    """The test cell as (code, is_hidden) blocks run one after the other, each padded with
    blank lines so that line numbers match the whole cell. A cell whose blocks do not parse
    on their own (a hidden block inside a function, say) runs whole, as hidden."""
    hidden = _hidden_line_range(source)
    if hidden is None:
        return [(source, False)]
    lines = source.splitlines()
    first, last = hidden
    visible = "\n".join(lines[: first - 1])
    secret = "\n" * (first - 1) + "\n".join(lines[first - 1 : last])
    after = "\n" * last + "\n".join(lines[last:])
    blocks = [(visible, False), (secret, True), (after, False)]
    try:
        for code, _ in blocks:
            ast.parse(code)
    except SyntaxError:
        return [(source, True)]
    return [(code, is_hidden) for code, is_hidden in blocks if code.strip()]


def _free_names(tree: ast.AST) -> set[str]:
    """Names the code reads but never binds anywhere (a conservative over-approximation of
    what must come from outside)."""
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            if not isinstance(node, ast.ClassDef):
                args = node.args
                for a in args.posonlyargs + args.args + args.kwonlyargs:
                    bound.add(a.arg)
                for a in (args.vararg, args.kwarg):
                    if a is not None:
                        bound.add(a.arg)
        elif isinstance(node, ast.Lambda):
            for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
                bound.add(a.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    return loaded - bound


def _hidden_line_range(source: str) -> tuple[int, int] | None:
    """1-based line numbers (first, last) of the hidden block of a test cell."""
    lines = source.splitlines()
    begin = next((i for i, line in enumerate(lines) if HIDDEN_BEGIN in line), None)
    if begin is None:
        return None
    end = next((i for i in range(begin, len(lines)) if HIDDEN_END in lines[i]), len(lines) - 1)
    return begin + 1, end + 1


def _describe_failure(exc: Exception, filename: str, source: str, hidden) -> str:
    """One line: where the test failed and why -- without the source of a hidden test."""
    lineno = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == filename:
            lineno = line
    what = type(exc).__name__
    text = str(exc)
    if isinstance(exc, StudentCodeError):
        what = "error in your code"
    detail = f"{what}: {text}" if text else what
    if lineno is None:
        return detail[:MAX_MESSAGE]
    if hidden and hidden[0] <= lineno <= hidden[1]:
        if isinstance(exc, StudentCodeError | NameError):
            return f"a hidden test failed: {detail}"[:MAX_MESSAGE]
        return f"a hidden test failed ({what})"
    code = source.splitlines()[lineno - 1].strip()
    return f"line {lineno}: {code}  ->  {detail}"[:MAX_MESSAGE]


def check_notebook_against(
    submission,
    source,
    sandboxed: bool,
    cell_timeout: float,
    timeout: float,
    secret_paths=(),
    env: dict | None = None,
    workdir=None,
    on_event: Callable[[dict], None] | None = None,
    limits=None,
) -> list[Verdict]:
    """Grade ``submission`` (a notebook) with the tests of ``source`` in a fresh student
    interpreter. Parts not reached (the student's kernel died, time ran out) fail with a
    message saying so."""
    the_plan = plan(submission, source)
    deadline = time.monotonic() + timeout
    verdicts: dict[str, Verdict] = {}
    with StudentProcess(
        sandboxed, secret_paths=list(secret_paths), env=env, workdir=workdir, limits=limits
    ) as student:
        student.wait_ready()
        checker = Checker(student, cell_timeout, deadline, on_event)
        for verdict in checker.run(the_plan):
            verdicts[verdict.grade_id] = verdict
    return [verdicts[s.grade_id] for s in the_plan.steps if s.kind == "test"]
