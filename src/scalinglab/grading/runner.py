"""The student's side of grading: runs the submission's cells and answers the grader.

Started by :mod:`scalinglab.grading.student` (inside the OS sandbox when grading) as::

    python -s -m scalinglab.grading.runner REQUEST_FD REPLY_FD INTERRUPT_FD

It executes cells in an IPython shell (so magics and notebook semantics hold) and serves
three requests from the grader over a pipe:

- ``run``: execute a cell's source;
- ``resolve``: what a name in the student's namespace is (a function, a plain value, or
  undefined);
- ``call``: call a student function on arguments the grader sends and return the result
  as plain data (:mod:`scalinglab.grading.wire`).

Nothing here decides a grade: the grader compares the returned data with the expected
values in its own process. Whatever the student's code does to this process (patching
NumPy, IPython hooks, fake outputs, writing to the pipe) can only change the answers it
gives, never the verdict on them. A byte on INTERRUPT_FD raises KeyboardInterrupt in the
running cell, which is how the grader stops a cell that runs past its time.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import signal
import sys
import threading
import traceback

from scalinglab.grading import wire

MAX_CAPTURE = 20_000  # characters of a cell's stdout/stderr sent back (for feedback)


class _Tee(io.TextIOBase):
    """Writes to the real stream and keeps the first MAX_CAPTURE characters."""

    def __init__(self, stream):
        self._stream, self._parts, self._size = stream, [], 0

    def write(self, text):
        if self._size < MAX_CAPTURE:
            self._parts.append(text[: MAX_CAPTURE - self._size])
            self._size += len(self._parts[-1])
        with contextlib.suppress(Exception):
            self._stream.write(text)
        return len(text)

    def flush(self):
        with contextlib.suppress(Exception):
            self._stream.flush()

    def getvalue(self) -> str:
        return "".join(self._parts)


def _error_fields(exc: BaseException) -> dict:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "ename": type(exc).__name__,
        "evalue": str(exc)[:2000],
        "traceback": "".join(lines)[-4000:],
    }


class Runner:
    def __init__(self, request_fd: int, reply_fd: int):
        from IPython.core.interactiveshell import InteractiveShell

        self.request_fd, self.reply_fd = request_fd, reply_fd
        self.shell = InteractiveShell.instance()
        self.shell.colors = "NoColor"
        self.ns = self.shell.user_ns

    # -- requests -------------------------------------------------------------------
    def run(self, message: dict) -> dict:
        out, err = _Tee(sys.stdout), _Tee(sys.stderr)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = self.shell.run_cell(message["source"], store_history=False, silent=False)
        error = result.error_before_exec or result.error_in_exec
        reply = {"ok": error is None, "stdout": out.getvalue(), "stderr": err.getvalue()}
        if error is not None:
            reply["error"] = _error_fields(error)
        return reply

    def resolve(self, message: dict) -> dict:
        name = message["name"]
        if name not in self.ns:
            return {"ok": True, "kind": "undefined"}
        value = self.ns[name]
        if callable(value) and not _is_plain_container(value):
            return {"ok": True, "kind": "callable"}
        try:
            return {"ok": True, "kind": "value", "value": wire.encode(value)}
        except wire.WireError as exc:
            return {"ok": True, "kind": "unsupported", "reason": str(exc)}

    def call(self, message: dict) -> dict:
        name = message["name"]
        if name not in self.ns:
            return {
                "ok": False,
                "error": {"ename": "NameError", "evalue": f"{name!r} is not defined"},
            }
        function = self.ns[name]
        args = wire.decode(message.get("args", []), allow_pickle=True)
        kwargs = wire.decode(message.get("kwargs", {}), allow_pickle=True)
        forbidden = _forbidden_code_objects(message.get("forbid", []))
        calls_made: set[str] = set()
        out, err = _Tee(sys.stdout), _Tee(sys.stderr)
        try:
            with (
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
                _watch_calls(forbidden, calls_made),
            ):
                result = function(*args, **kwargs)
            value = wire.encode(result)
        except BaseException as exc:  # noqa: BLE001 -- the student's error is the answer
            if isinstance(exc, SystemExit):
                exc = RuntimeError(f"called exit({exc.code})")
            reply = {"ok": False, "error": _error_fields(exc)}
        else:
            reply = {"ok": True, "value": value}
        reply.update(stdout=out.getvalue(), stderr=err.getvalue(), forbidden=sorted(calls_made))
        return reply

    # -- loop -----------------------------------------------------------------------
    def serve(self) -> None:
        handlers = {"run": self.run, "resolve": self.resolve, "call": self.call}
        self._send({"id": 0, "ready": True})  # before any student code runs
        while True:
            message = wire.read_message_blocking(self.request_fd)
            if message is None or message.get("op") == "exit":
                return
            _BUSY.set()  # from here an interrupt stops the student's code ...
            try:
                reply = handlers[message["op"]](message)
            except KeyboardInterrupt as exc:
                reply = {"ok": False, "error": _error_fields(exc)}
            except Exception as exc:  # noqa: BLE001 -- reported to the grader
                reply = {"ok": False, "error": _error_fields(exc)}
            finally:
                _BUSY.clear()  # ... and a late one cannot break a message being read or sent
            reply["id"] = message.get("id")
            self._send(reply)

    def _send(self, reply: dict) -> None:
        while True:
            try:
                try:
                    data = wire.dump_message(reply)
                except (wire.WireError, TypeError, ValueError) as exc:
                    data = wire.dump_message(
                        {"id": reply.get("id"), "ok": False, "error": _error_fields(exc)}
                    )
                wire.write_all_blocking(self.reply_fd, data)
                return
            except KeyboardInterrupt:  # a late interrupt must not lose the reply
                continue


def _is_plain_container(value) -> bool:
    """Arrays and tensors are callable-free data even if some define __call__."""
    import numpy as np

    return isinstance(value, np.ndarray)


def _fingerprint(code) -> tuple:
    """What identifies a function's code whatever its name, file or line numbers: its
    bytecode and the names and constants it uses. A copy made with ``code.replace`` or
    ``types.FunctionType`` has the same; only rewriting the function changes it."""
    return (code.co_code, code.co_names, tuple(repr(c) for c in code.co_consts))


def _forbidden_code_objects(names: list[str]) -> dict:
    """``{fingerprint: "module.function"}`` for the package functions a part forbids."""
    codes = {}
    for dotted in names:
        module_name, _, attribute = str(dotted).rpartition(".")
        try:
            target = getattr(importlib.import_module(module_name), attribute)
            code = inspect.unwrap(target).__code__
        except Exception:  # noqa: BLE001 -- a name that does not resolve forbids nothing
            continue
        codes[_fingerprint(code)] = dotted
    return codes


@contextlib.contextmanager
def _watch_calls(forbidden: dict, calls_made: set[str]):
    """Record which forbidden functions run while the block executes, in this thread and
    in every thread started meanwhile (``sys.setprofile`` and ``threading.setprofile``;
    also threads already running, where Python has ``threading.setprofile_all_threads``).
    A deterrent for honest students, not a proof: code in another process, or the
    package's function copied out as source, is not seen."""
    if not forbidden:
        yield
        return
    verdicts: dict[int, tuple] = {}  # id(code) -> (code, name or None): fingerprint once

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            known = verdicts.get(id(code))
            if known is None or known[0] is not code:
                known = verdicts[id(code)] = (code, forbidden.get(_fingerprint(code)))
            if known[1]:
                calls_made.add(known[1])

    previous = sys.getprofile()
    everywhere = getattr(threading, "setprofile_all_threads", None)
    threading.setprofile(profile)
    if everywhere is not None:
        everywhere(profile)
    sys.setprofile(profile)
    try:
        yield
    finally:
        threading.setprofile(None)
        if everywhere is not None:
            everywhere(None)
        sys.setprofile(previous)


def _listen_for_interrupts(fd: int) -> None:
    """Each byte on ``fd`` interrupts the main thread, like Ctrl-C in a notebook."""
    while True:
        try:
            data = os.read(fd, 1)
        except OSError:
            return
        if not data:
            return
        os.kill(os.getpid(), signal.SIGINT)


_BUSY = threading.Event()  # set while a request (the student's code) runs


def _on_interrupt(signum, frame):
    """Ctrl-C semantics while the student's code runs; ignored between requests."""
    if _BUSY.is_set():
        raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    request_fd, reply_fd, interrupt_fd = (int(a) for a in argv[:3])
    signal.signal(signal.SIGINT, _on_interrupt)
    threading.Thread(target=_listen_for_interrupts, args=(interrupt_fd,), daemon=True).start()
    Runner(request_fd, reply_fd).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
