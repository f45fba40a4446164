"""Worker process of :func:`scalinglab.grading.autograde` (run with ``python -m``).

Reads a job (JSON) on standard input: the source notebook with the hidden tests, the
private copy of the submission, the limits. Runs the submission against the tests
(:func:`scalinglab.grading.checker.check_notebook_against`) and writes one JSON event per
line on standard output -- ``start`` and ``verdict`` for each part, ``note`` for repaired
cells, ``done`` at the end -- so the parent keeps every verdict reached even if this
process is killed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

from scalinglab.grading.autograde import thread_env
from scalinglab.grading.checker import check_notebook_against
from scalinglab.grading.sandbox import Limits
from scalinglab.grading.student import StartError


def main() -> int:
    job = json.loads(sys.stdin.read())
    out = sys.stdout

    def emit(event: dict) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    source = nbformat.read(job["source"], 4)
    submission = nbformat.read(job["submission"], 4)
    limits = Limits(**job.get("limits", {}))
    try:
        check_notebook_against(
            submission,
            source,
            sandboxed=job["sandbox"],
            cell_timeout=job["cell_timeout"],
            timeout=job["timeout"],
            secret_paths=[Path(p) for p in job["secret"]] + [Path(job["source"]).parent],
            env={"NBGRADER_EXECUTION": "autograde", **thread_env(job.get("threads"))},
            on_event=emit,
            limits=limits,
            scratch=Path.cwd(),  # the private folder autograde() removes
        )
    except StartError as exc:
        emit({"event": "grader_error", "message": str(exc)})
        return 1
    emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
