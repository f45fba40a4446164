"""Every exercise judges a correct answer by its value, whatever legitimate type carries it.

Each solution is graded with every function it defines wrapped so that, when the grader
calls it, its result comes back as another legitimate type of the same value: float64
arrays as torch tensors (with and without ``requires_grad``), floats as NumPy scalars,
0-d arrays or 0-d tensors, in turn; and each float variable as a 0-d array. The wrappers
act only on the grader's calls (the solution's own calls between its functions get the
original types), so a full score shows that the tests accept each type (issue 19, point
11; the conversion is ``scalinglab.grading.wire.decode_for_tests``). float32 is not
varied: several exercises test at tolerances below float32 precision, which is a
precision requirement, not a type (see CONTRIBUTING).
"""

from __future__ import annotations

import nbformat
import pytest

from conftest import SANDBOX, assignments
from scalinglab.grading import autograde, source_notebook_path
from scalinglab.grading.notebooks import nbgrader_meta
from scalinglab.grading.variants import SELF_STUDY

pytestmark = pytest.mark.slow

VARIETY = """
import functools as _ft, inspect as _insp, itertools as _it, sys as _sys
import numpy as _np
import torch as _torch

_turn = _it.count()


def _other_type(value):
    k = next(_turn)
    if isinstance(value, _np.ndarray) and value.dtype == _np.float64 and value.ndim:
        return _torch.tensor(value, requires_grad=True) if k % 2 else _torch.from_numpy(value)
    if type(value) in (float, _np.float64):
        return [_np.float64(value), _np.array(float(value)), _torch.tensor(float(value), dtype=_torch.float64)][k % 3]
    if type(value) in (list, tuple):
        return type(value)(_other_type(v) for v in value)
    if type(value) is dict:
        return {key: _other_type(v) for key, v in value.items()}
    return value


def _varied(f):
    @_ft.wraps(f)
    def call(*args, **kwargs):
        result = f(*args, **kwargs)
        caller = _sys._getframe(1).f_code
        if caller.co_name == "call" and caller.co_filename.endswith("runner.py"):
            return _other_type(result)  # the grader asked
        return result
    call.__varied__ = True
    return call


for _name, _obj in list(globals().items()):
    if _name.startswith("_"):
        continue
    if _insp.isfunction(_obj) and _obj.__module__ == "__main__" and not hasattr(_obj, "__varied__"):
        globals()[_name] = _varied(_obj)
    elif type(_obj) is float:
        globals()[_name] = _np.array(_obj)
"""


@pytest.mark.parametrize("assignment", assignments())
def test_every_legitimate_return_type_is_judged_by_value(assignment, course, tmp_path):
    nb = nbformat.read(source_notebook_path(assignment, course), 4)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            cells.append(nbformat.v4.new_code_cell(VARIETY))  # no grade_id: runs after it
    nb.cells = cells
    path = tmp_path / "varied.ipynb"
    nbformat.write(nb, path)
    # graded under the id the solution notebooks carry (their variant parts check it)
    report = autograde(path, assignment, course, student=SELF_STUDY, sandbox=SANDBOX)
    assert report.error is None, report.summary()
    assert report.score == report.max_score, report.summary()
