"""Hidden-test inputs that stay hidden although the course (and its solutions) is public.

A hidden test draws its inputs at grading time from a generator seeded by

    seed = SHA-256(secret ‖ assignment ‖ label)  (its first 8 bytes, as an integer)

and compares the student's answer with an independent reference computed on those inputs
(the package, scipy, torch, a closed form), never with numbers written in the test. The
secret is the instructor's: the environment variable ``SCALINGLAB_GRADING_SECRET``, else the
file named by ``SCALINGLAB_GRADING_SECRET_FILE``, else ``~/.config/scalinglab/grading-secret``
when it exists. It never enters the repository, and the sandboxed student process is started
with an explicit environment that does not carry it (:func:`scalinglab.grading.student`).

Without a secret (self-study, ``scalinglab validate``, a student's own Jupyter kernel) the
public default below is used, so hidden tests still run and still vary from the visible
ones; only an instructor's secret makes their inputs unknowable in advance.

Test cells use it like this (the hidden block runs only in the grader's process)::

    ### BEGIN HIDDEN TESTS
    from scalinglab.grading.hidden import hidden_rng
    rng = hidden_rng("01-softmax-cross-entropy", "test_softmax")
    z = rng.normal(size=(5, 7)) * 30
    assert np.allclose(softmax(z), scipy.special.softmax(z, axis=-1))
    ### END HIDDEN TESTS
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

SECRET_ENV = "SCALINGLAB_GRADING_SECRET"
SECRET_FILE_ENV = "SCALINGLAB_GRADING_SECRET_FILE"
DEFAULT_SECRET_FILE = Path("~/.config/scalinglab/grading-secret")
#: used when no instructor secret is configured: public, so it hides nothing
PUBLIC_SECRET = "scalinglab-public-self-study"


def instructor_secret() -> str:
    """The instructor's secret, or :data:`PUBLIC_SECRET` when none is configured."""
    value = os.environ.get(SECRET_ENV)
    if value:
        return value
    path = os.environ.get(SECRET_FILE_ENV)
    candidate = Path(path).expanduser() if path else DEFAULT_SECRET_FILE.expanduser()
    if candidate.is_file():
        text = candidate.read_text(encoding="utf-8").strip()
        if text:
            return text
    if path:  # named but missing or empty: never fall back silently to the public seed
        raise FileNotFoundError(f"{SECRET_FILE_ENV}={path}: no secret in that file")
    return PUBLIC_SECRET


def secret_paths() -> list[Path]:
    """Files and folders that may hold the secret: kept out of the grading sandbox (the
    grader passes them to :func:`scalinglab.grading.sandbox.readable_paths` as secret), so
    a folder the sandbox would otherwise bind (a ``sys.path`` entry, say) never exposes it."""
    paths = [DEFAULT_SECRET_FILE.expanduser().parent]
    named = os.environ.get(SECRET_FILE_ENV)
    if named:
        paths.append(Path(named).expanduser().resolve())
    return paths


def derive_seed(*parts: str, secret: str | None = None) -> int:
    """A 64-bit seed from the secret and ``parts``: SHA-256 over them, NUL-separated."""
    key = instructor_secret() if secret is None else secret
    digest = hashlib.sha256("\0".join((key, *parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def hidden_seed(assignment: str, label: str) -> int:
    """The seed of the hidden inputs of ``label`` (a test's grade_id) in ``assignment``."""
    return derive_seed("hidden", assignment, label)


def hidden_rng(assignment: str, label: str) -> np.random.Generator:
    """A NumPy generator for the hidden inputs of one test (see the module docstring)."""
    return np.random.default_rng(hidden_seed(assignment, label))
