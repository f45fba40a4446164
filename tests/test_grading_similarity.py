"""``scalinglab similarity``: a copied submission (variables renamed) is found whole, the
public solution is found in the submission that is the public solution, and an independent
implementation ranks below the copy; the HTML report shows the pairs."""

from __future__ import annotations

from conftest import course_copy, submit
from scalinglab.cli import main
from scalinglab.grading import source_notebook_path, with_solution_replaced

A = "01-softmax-cross-entropy"

ORIGINAL = {
    "softmax": """def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    centred = z - np.max(z, axis=-1, keepdims=True)
    weights = np.exp(centred)
    total = np.sum(weights, axis=-1, keepdims=True)
    normalised = weights / total
    normalised = np.clip(normalised, 0.0, 1.0)
    return normalised""",
    "entropy": """def entropy(p):
    p = np.asarray(p, dtype=np.float64)
    mask = p > 0
    logs = np.zeros_like(p)
    logs[mask] = np.log(p[mask])
    value = -np.sum(p * logs, axis=-1)
    return float(value) if np.ndim(value) == 0 else value""",
}
# the same code with every name changed: winnowing on normalised tokens still sees it
RENAMED = {
    key: src.replace("centred", "shifted")
    .replace("weights", "e")
    .replace("total", "s")
    .replace("normalised", "out")
    .replace("mask", "ok")
    .replace("logs", "lg")
    .replace("value", "h")
    for key, src in ORIGINAL.items()
}
INDEPENDENT = {
    "softmax": """def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    for index in np.ndindex(z.shape[:-1]):
        row = z[index]
        top = row.max()
        ex = [math.exp(v - top) for v in row]
        out[index] = [v / sum(ex) for v in ex]
    return out""",
    "entropy": """def entropy(p):
    import math
    flat = [x for x in np.ravel(p) if x > 0]
    return -math.fsum(x * math.log(x) for x in flat)""",
}


def test_similarity_ranks_a_copy_first(course, tmp_path, monkeypatch, capsys):
    mine = course_copy(tmp_path, course)
    monkeypatch.chdir(mine.root)
    monkeypatch.setenv("SCALINGLAB_COURSE_ROOT", str(mine.root))
    source = source_notebook_path(A, course)
    stamp = "2026-11-20 17:59:00.000000 UTC"
    for student, cells in (("ann", ORIGINAL), ("ben", RENAMED), ("cat", INDEPENDENT)):
        nb = with_solution_replaced(source, cells, tmp_path / f"{student}.ipynb")
        submit(mine, student, A, nb, stamp)
    submit(mine, "dan", A, source, stamp)  # hands in the public solution itself
    assert main(["similarity", A, "--out", "report.html", "--top", "50"]) == 0
    printed = capsys.readouterr().out.splitlines()
    ranked = [line.split()[1:4:2] for line in printed if "~" in line]
    score = {tuple(sorted(pair)): float(line.split("%")[0]) for pair, line in zip(ranked, printed)}
    assert score[("dan", "public-solution")] == 100.0
    assert score[("ann", "ben")] == 100.0  # renaming every variable hides nothing
    # cat shares the five cells all three left as in the public solution, not the two
    # she wrote herself: clearly below the copy
    assert score[("ann", "cat")] < score[("ann", "ben")] - 15
    order = [tuple(sorted(pair)) for pair in ranked]
    assert order.index(("ann", "ben")) < order.index(("ann", "cat"))
    html = (mine.root / "report.html").read_text()
    assert "ann.py" in html and "ben.py" in html and "public-solution.py" in html
