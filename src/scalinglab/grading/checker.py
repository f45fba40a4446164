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
    message: str = ""  # why it failed, in full (never hidden-test source): for the instructor
    # why it failed without any text the student's code produced (the failing visible line
    # and the exception's type): for the student's feedback, so that nothing recorded from
    # hidden tests can be smuggled out through an error message
    public: str = ""
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


@dataclass
class Plan:
    steps: list[Step]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- planning


def plan(submission, source) -> Plan:
    """The cells to run: the source notebook's order, filled with the submission's work.

    Locked cells and graded tests are the source's (whatever the submission did to its
    copies) and run in the source's order, so a submission cannot move a locked cell to
    change what a test sees. Each solution cell runs at its source position (every copy the
    submission has of it, in its order); a cell the student added runs after the last known
    cell above it in the submission. A cell with an unknown ``grade_id`` counts as added.
    ``notes`` says what was repaired."""
    notes: list[str] = []
    trusted: dict[str, Step] = {}
    order: list[tuple[str, str]] = []  # (kind, grade_id) of the source's code cells
    for cell in source.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if cell.cell_type != "code" or not gid:
            continue
        if meta.get("grade") and not meta.get("solution"):
            trusted[gid] = Step("test", cell.source, gid, float(meta.get("points", 0)))
            order.append(("trusted", gid))
        elif meta.get("locked") and not meta.get("solution"):
            trusted[gid] = Step("locked", cell.source, gid)
            order.append(("trusted", gid))
        else:
            order.append(("solution", gid))
    known = {gid for _, gid in order}

    solutions: dict[str, list[Step]] = {}
    added: dict[str | None, list[Step]] = {}  # anchor grade_id -> cells added after it
    seen: dict[str, int] = {}
    anchor = None
    for cell in submission.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        gid = gid if isinstance(gid, str) else None  # any JSON may stand there
        if gid in known:
            seen[gid] = seen.get(gid, 0) + 1
            anchor = gid
            if gid not in trusted:
                solutions.setdefault(gid, []).append(Step("student", cell.get("source", ""), gid))
            continue
        if gid:
            notes.append(f"cell with unknown grade_id {gid!r} run as ordinary code")
        added.setdefault(anchor, []).append(Step("student", cell.get("source", ""), gid))

    steps: list[Step] = list(added.get(None, []))
    for kind, gid in order:
        if kind == "trusted":
            steps.append(trusted[gid])
            if gid not in seen:
                what = "test" if trusted[gid].kind == "test" else "locked"
                notes.append(
                    f"{what} cell {gid!r} was missing from the submission and was restored"
                )
            elif seen[gid] > 1:
                notes.append(f"cell {gid!r} appears more than once: graded once, copies ignored")
        else:
            steps += solutions.get(gid, [])
        steps += added.get(gid, [])
    return Plan(steps, notes)


def grader_names(source) -> set[str]:
    """Names bound at the top level of the source's locked and test cells: the grader's
    own. A test never takes one of these from the student's process, even before the cell
    that binds it has run."""
    names: set[str] = set()
    for cell in source.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or meta.get("solution"):
            continue
        if not (meta.get("locked") or meta.get("grade")):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        names |= _top_level_bindings(tree)
    return names


def _top_level_bindings(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (also inside if/for/with/try blocks, not inside
    function or class bodies, whose names are local)."""
    names: set[str] = set()

    def targets(node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                for target in getattr(node, "targets", None) or [node.target]:
                    targets(target)
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                targets(node.target)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
            elif isinstance(node, ast.Expr):
                for sub in ast.walk(node.value):
                    if isinstance(sub, ast.NamedExpr):
                        targets(sub.target)
            for part in ("body", "orelse", "finalbody"):
                block = getattr(node, part, None)
                if isinstance(block, list) and not isinstance(
                    node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
                ):
                    visit(block)
            for handler in getattr(node, "handlers", []) or []:
                if handler.name:
                    names.add(handler.name)
                visit(handler.body)

    visit(tree.body)
    return names


# --------------------------------------------------------------------------- proxies


class StudentCodeError(Exception):
    """The student's function raised, returned something that is not plain data, or
    called a forbidden package function. ``public`` says so without the student's text."""

    public = "error in your code"


_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}


def _student_exception(name: str, error: dict) -> Exception:
    """An exception the test can catch like the original (a builtin exception type keeps
    its type, so ``pytest.raises(ValueError)``-style checks still work)."""
    ename, evalue = str(error.get("ename", "Exception")), str(error.get("evalue", ""))
    if ename == "NotImplementedError":
        message = f"{name} is not attempted (it raises NotImplementedError)"
    else:
        message = f"{name}(...) raised {ename}" + (f": {evalue}" if evalue else "")
    base = _BUILTIN_EXCEPTIONS.get(ename)
    exc: Exception = StudentCodeError(message)
    if base is not None and base not in (StopIteration, StopAsyncIteration):
        # (a StopIteration would silently end a map() or zip() over student calls)
        try:
            exc = type(f"Student{ename}", (StudentCodeError, base), {})(message)
        except TypeError:  # exception types that cannot be combined
            pass
    # A fixed vocabulary: which exception the student's code raises is the student's
    # choice, and could be made after recording a hidden test's inputs. "Not attempted" is
    # the exercise's own stub (NotImplementedError).
    exc.public = (
        f"your {name} is not attempted (it raises NotImplementedError)"
        if ename == "NotImplementedError"
        else f"your {name} raised an exception"
    )
    return exc


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
        self._death_public = ""
        self.reserved: set[str] = set()  # the grader's names (grader_names of the source)
        # Like Jupyter's "Run all" (scalinglab validate): after the first error in a
        # student cell nothing more runs, and later parts fail naming that error. Grading
        # (False) goes on, so that intact parts keep their points.
        self.stop_on_error = False
        self.first_error: str | None = None  # "cell 'softmax' raised SyntaxError: ..."

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
            self._fail(str(exc), where, exc.public)
            raise
        except StudentTimeout as exc:
            if self.student.proc.poll() is not None or "time limit" in str(exc):
                self._fail(f"timed out ({exc})", where, "timed out")
            raise

    def _fail(self, what: str, where: str, public: str) -> None:
        """The student's kernel is gone: say so once, with where it happened (for the
        instructor; the student's code chooses where, so the student is told only what)."""
        self._student_alive = False
        if self._death is None:
            self._death = f"{what} {where}".strip()
            self._death_public = public
            self.on_event({"event": "failure", "message": self._death, "public": public})

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
            used = ", ".join(str(f) for f in reply["forbidden"] if str(f) in self._forbid)
            exc = StudentCodeError(
                f"{name} calls {used or 'a forbidden function'}, the package's own "
                "implementation: this part must be your own code"
            )
            exc.public = str(exc)
            raise exc
        if not reply.get("ok"):
            raise _student_exception(name, reply.get("error") or {})
        try:
            return wire.decode_for_tests(reply.get("value"))
        except wire.WireError as exc:
            error = StudentCodeError(f"{name} returned a value the grader cannot read: {exc}")
            error.public = f"your {name} returned a value the grader cannot read"
            raise error from None

    def _bind_student_names(self, tree: ast.AST) -> list[str]:
        """Put proxies/values for the student names ``tree`` uses into the namespace."""
        injected = []
        for name in sorted(_free_names(tree)):
            if name in self.namespace or hasattr(builtins, name) or name in self.reserved:
                continue
            reply = self._request({"op": "resolve", "name": name}, self._where)
            kind = reply.get("kind")
            if kind == "callable":
                self.namespace[name] = StudentFunction(self, name)
            elif kind == "value":
                try:
                    self.namespace[name] = wire.decode_for_tests(reply.get("value"))
                except wire.WireError as exc:
                    raise StudentCodeError(f"{name} cannot be read by the grader: {exc}") from None
            elif kind == "unsupported":
                raise StudentCodeError(f"{name} cannot be graded: {reply.get('reason')}")
            else:
                continue  # undefined: the test meets a NameError if it needs the name
            injected.append(name)
        return injected

    def _exec_trusted(self, source: str, filename: str, explain: bool = False) -> str:
        """Run instructor code in the grader's namespace; return what it printed."""
        tree = ast.parse(source, filename)
        injected = self._bind_student_names(tree)
        if explain:
            tree = _ExplainAsserts().visit(tree)
            ast.fix_missing_locations(tree)
            self.namespace[_EXPLAIN] = _explain
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
                        "public": verdict.public,
                        "output": verdict.output,
                    }
                )
            elif self.stop_on_error and self.first_error:
                continue
            elif self._student_alive and time.monotonic() < self.deadline:
                self.run_cell(step)
        return verdicts

    def run_cell(self, step: Step) -> None:
        """A student cell runs on the student's side; a locked cell on both sides."""
        where = f"in cell {step.grade_id!r}" if step.grade_id else "in a cell without grade_id"
        try:
            reply = self._request({"op": "run", "source": step.source}, where)
            if not reply.get("ok") and step.kind == "student":
                error = reply.get("error") or {}
                ename, evalue = str(error.get("ename", "Exception")), str(error.get("evalue", ""))
                what = f"{where[3:]} raised {ename}" + (f": {evalue}" if evalue else "")
                # (an exercise's untouched stub raises NotImplementedError: a part not yet
                # attempted does not stop the check of the others)
                if self.first_error is None and ename != "NotImplementedError":
                    self.first_error = what[:MAX_MESSAGE]
                # the instructor's note only: the student's code chooses the text
                self.on_event({"event": "note", "message": what[:300], "private": True})
        except StudentTimeout as exc:
            if self.first_error is None and step.kind == "student":
                self.first_error = f"{where[3:]} timed out ({exc})"
            self.on_event({"event": "note", "message": f"{where}: {exc}", "private": True})
        except StudentDied:
            pass  # reported once by _fail
        except wire.WireError as exc:  # a cell too large to send: the submission's fault
            self.on_event({"event": "note", "message": f"{where} was not run: {exc}"})
        if step.kind == "locked":
            try:
                self._exec_trusted(step.source, f"<cell {step.grade_id}>")
            except Exception as exc:  # noqa: BLE001 -- a later test will fail with it
                message = f"locked cell {step.grade_id!r}: {exc!r}"[:300]
                self.on_event({"event": "note", "message": message, "private": True})

    def check(self, step: Step) -> Verdict:
        verdict = Verdict(step.grade_id, step.points, passed=False)
        if not self._student_alive:
            verdict.message = f"not graded: {self._death}"
            verdict.public = f"not graded: {self._death_public}"
            return verdict
        if self.stop_on_error and self.first_error:
            verdict.message = verdict.public = f"not run: {self.first_error}"
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
                printed = self._exec_trusted(code, filename, explain=True)
                if not is_hidden:  # what hidden tests print never reaches a report
                    outputs.append(printed)
            verdict.passed = True
        except StudentTimeout as exc:
            verdict.message = f"timed out in part {step.grade_id}: {exc}"
            verdict.public = f"timed out in part {step.grade_id}"
        except StudentDied as exc:
            verdict.message = (
                f"{exc} in part {step.grade_id}" if self._death is None else str(self._death)
            )
            verdict.public = exc.public
        except Exception as exc:  # noqa: BLE001 -- any failure of the test is the verdict
            verdict.message, verdict.public = _describe_failure(exc, filename, step.source, hidden)
        finally:
            self._forbid, self._where = [], ""
        verdict.output = "".join(outputs)[-4000:]
        return verdict


_EXPLAIN = "__grader_explain__"
_VALUE = "__grader_value_{}__"


def _explain(sources: list[str], values: list) -> str:
    """The values an assert compared, one short ``source = repr`` each."""
    import numpy as np

    parts = []
    with np.printoptions(threshold=12, edgeitems=3, precision=6):
        for source, value in zip(sources, values):
            text = " ".join(repr(value).split())
            parts.append(f"{source} = {text[:200]}{' ...' if len(text) > 200 else ''}")
    return "; ".join(parts)


class _ExplainAsserts(ast.NodeTransformer):
    """``assert a == b`` and ``assert f(a, b)`` without a message become: evaluate the
    operands (in the same order, once), then assert on them with a message that shows
    their values -- so a failed visible test says what it compared (as pytest does)."""

    def visit_Assert(self, node: ast.Assert):
        if node.msg is not None:
            return node
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            operands = [test.left, test.comparators[0]]
        elif (
            isinstance(test, ast.Call)
            and test.args
            and not any(isinstance(a, ast.Starred) for a in test.args)
            and all(k.arg is not None for k in test.keywords)
        ):
            operands = list(test.args)
        else:
            return node
        names = [_VALUE.format(i) for i in range(len(operands))]
        if isinstance(test, ast.Call):
            func = _VALUE.format("f")
            before = [ast.Assign([ast.Name(func, ast.Store())], test.func)]
            new_test = ast.Call(
                ast.Name(func, ast.Load()), [ast.Name(n, ast.Load()) for n in names], test.keywords
            )
        else:
            before = []
            new_test = ast.Compare(
                ast.Name(names[0], ast.Load()), test.ops, [ast.Name(names[1], ast.Load())]
            )
        before += [ast.Assign([ast.Name(n, ast.Store())], op) for n, op in zip(names, operands)]
        message = ast.Call(
            ast.Name(_EXPLAIN, ast.Load()),
            [
                ast.List([ast.Constant(ast.unparse(op)) for op in operands], ast.Load()),
                ast.List([ast.Name(n, ast.Load()) for n in names], ast.Load()),
            ],
            [],
        )
        statements = [*before, ast.Assert(new_test, message)]
        for statement in statements:
            ast.copy_location(statement, node)
        return statements


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


def _describe_failure(exc: Exception, filename: str, source: str, hidden) -> tuple[str, str]:
    """``(full, public)`` one-line reasons: where the test failed and why. Neither shows the
    source of a hidden test. ``public`` is in a fixed vocabulary -- the failing visible line
    (the instructor's text), "failed", "your f raised an exception", "a hidden test failed"
    -- with no text, exception type or number chosen by the student's code, which may have
    recorded hidden inputs in an earlier call."""
    lineno = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == filename:
            lineno = line
    student = isinstance(exc, StudentCodeError)
    what = "error in your code" if student else type(exc).__name__
    text = str(exc)
    detail = f"{what}: {text}" if text else what
    if student:
        public = getattr(exc, "public", "") or "error in your code"
    elif isinstance(exc, AssertionError):
        public = "failed"
    else:
        public = "the test could not use your result"
    if lineno is None:
        return detail[:MAX_MESSAGE], public[:MAX_MESSAGE]
    if hidden and hidden[0] <= lineno <= hidden[1]:
        kind = "your code raised an exception" if student else type(exc).__name__
        private = f"a hidden test failed (line {lineno}: {kind}: {text[:300]})"
        return private[:MAX_MESSAGE], "a hidden test failed"
    code = source.splitlines()[lineno - 1].strip()
    return (
        f"line {lineno}: {code}  ->  {detail}"[:MAX_MESSAGE],
        f"line {lineno}: {code}  ->  {public}"[:MAX_MESSAGE],
    )


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
    scratch=None,
    stop_on_error: bool = False,
) -> list[Verdict]:
    """Grade ``submission`` (a notebook) with the tests of ``source`` in a fresh student
    interpreter. Parts not reached (the student's kernel died, time ran out) fail with a
    message saying so."""
    the_plan = plan(submission, source)
    deadline = time.monotonic() + timeout
    verdicts: dict[str, Verdict] = {}
    with StudentProcess(
        sandboxed,
        secret_paths=list(secret_paths),
        env=env,
        workdir=workdir,
        limits=limits,
        scratch=scratch,
    ) as student:
        if on_event is not None and student.cgroup_paths:
            # so that the parent removes them if it has to kill this process
            on_event({"event": "cgroups", "paths": student.cgroup_paths})
        student.wait_ready()
        checker = Checker(student, cell_timeout, deadline, on_event)
        checker.reserved = grader_names(source)
        checker.stop_on_error = stop_on_error
        for verdict in checker.run(the_plan):
            verdicts[verdict.grade_id] = verdict
    return [verdicts[s.grade_id] for s in the_plan.steps if s.kind == "test"]
