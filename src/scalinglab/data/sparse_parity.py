"""Multitask sparse parity: many discrete skills with Zipf-distributed frequencies.

The data set of the quantization model (Michaud, Liu, Girit & Tegmark 2023). There are
``n_tasks`` subtasks. Subtask :math:`k` (1-based rank) owns a fixed set
:math:`S_k \\subset \\{1..n\\}` of ``k_sparse`` bit positions, all sets distinct. An example
of subtask :math:`k` is

.. math::

    x = (\\underbrace{e_k}_{\\text{control bits}},\\ b), \\quad b \\sim \\mathrm{Unif}\\{0,1\\}^n,
    \\qquad y = \\textstyle\\sum_{i \\in S_k} b_i \\bmod 2,

the one-hot code of the subtask (``n_tasks`` control bits) followed by ``n_bits`` uniform
bits; the label is the parity of the subtask's bits. Subtasks are drawn with probability

.. math::

    p_k = \\frac{k^{-(\\alpha+1)}}{\\sum_{j=1}^{n_\\text{tasks}} j^{-(\\alpha+1)}},

so subtask 1 is the most frequent. The labels are noiseless: every subtask's Bayes loss is
exactly 0, and a model that has not learned subtask :math:`k` cannot do better than
chance on it (its label is independent of any fewer than ``k_sparse`` of the bits and of the
control bits), loss :math:`\\ln 2` for the best such predictor.

This follows ``scripts/sparse-parity-v4.py`` of ``ejmichaud/quantization-model``: inputs
``n_tasks + n`` wide, control bits first; the subsets drawn at random and kept distinct;
frequencies ``np.power(n, -alpha)`` normalised (their ``alpha`` is our :math:`\\alpha + 1`).
Their experiments use ``n = 100`` bits, ``k = 3``, ``n_tasks = 500`` and an exponent of
1.4; this course uses fewer bits and ``k = 2`` so that a CPU suffices.

The test set here is *stratified*: the same number of fresh examples for every subtask, so
that each subtask's loss is measured with the same precision, and the mean loss is the
exact mixture :math:`\\sum_k p_k L_k` instead of a sampled one.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def zipf_frequencies(n_tasks: int, alpha: float) -> np.ndarray:
    """:math:`p_k \\propto k^{-(\\alpha+1)}` for ``k = 1..n_tasks``, normalised (float64)."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    p = np.arange(1, n_tasks + 1, dtype=np.float64) ** -(alpha + 1.0)
    return p / p.sum()


def draw_subsets(n_tasks: int, n_bits: int, k_sparse: int, seed: int) -> np.ndarray:
    """``n_tasks`` distinct sorted ``k_sparse``-subsets of ``range(n_bits)``, ``(n_tasks, k)``.

    To read subsets from only the first ``m`` of more input bits (the feature-sharing control
    of chapter 8), call it with ``n_bits=m``: :class:`MultitaskSparseParity` does that when
    given ``subset_bits=m``, so the subsets are exactly those of an ``m``-bit task."""
    if math.comb(n_bits, k_sparse) < n_tasks:
        raise ValueError(
            f"only {math.comb(n_bits, k_sparse)} distinct {k_sparse}-subsets of {n_bits} bits, "
            f"need {n_tasks}"
        )
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < n_tasks:
        s = tuple(sorted(int(i) for i in rng.choice(n_bits, k_sparse, replace=False)))
        if s not in seen:
            seen.add(s)
            out.append(s)
    return np.array(out, dtype=np.int64)


class MultitaskSparseParity:
    """The data source: ``n_tasks`` sparse parities of ``k_sparse`` of ``n_bits`` bits.

    ``subset_seed`` fixes which bits each subtask reads (the *task*); samples are drawn
    from a separate :class:`torch.Generator` passed to :meth:`sample`. ``subset_bits=m``
    draws the subsets from the first ``m`` bits only (the same subsets as an ``m``-bit task
    with the same ``subset_seed``), the rest of the input being noise.
    """

    def __init__(
        self,
        n_tasks: int = 100,
        n_bits: int = 16,
        k_sparse: int = 2,
        alpha: float = 0.5,
        subset_seed: int = 0,
        subset_bits: int | None = None,
    ) -> None:
        self.n_tasks, self.n_bits, self.k_sparse = int(n_tasks), int(n_bits), int(k_sparse)
        self.alpha = float(alpha)
        self.probs = zipf_frequencies(self.n_tasks, self.alpha)
        # subsets read from the first ``subset_bits`` bits only (default: all of them); the
        # other bits are uniform noise that no label depends on
        self.subset_bits = self.n_bits if subset_bits is None else int(subset_bits)
        if not 1 <= self.subset_bits <= self.n_bits:
            raise ValueError(f"subset_bits must be in 1..n_bits={self.n_bits}, got {subset_bits}")
        self.subsets = draw_subsets(self.n_tasks, self.subset_bits, self.k_sparse, subset_seed)
        self._probs_t = torch.as_tensor(self.probs)
        self._subsets_t = torch.as_tensor(self.subsets)

    @property
    def in_dim(self) -> int:
        return self.n_tasks + self.n_bits

    def encode(self, tasks: torch.Tensor, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[one_hot(task), bits]`` (float32) and parity labels (int64)."""
        tasks, bits = tasks.long(), bits.long()
        y = bits.gather(-1, self._subsets_t[tasks]).sum(-1) % 2
        code = torch.nn.functional.one_hot(tasks, self.n_tasks).float()
        return torch.cat([code, bits.float()], dim=-1), y

    def sample(self, shape, generator: torch.Generator):
        """``(x, y, task)`` for ``shape`` examples (an int or a tuple), subtasks drawn ~ p_k.

        ``task`` is 0-based: ``task = k - 1`` for subtask rank ``k``.
        """
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = math.prod(shape)
        tasks = torch.multinomial(self._probs_t, n, replacement=True, generator=generator)
        tasks = tasks.view(shape)
        bits = torch.randint(0, 2, (*shape, self.n_bits), generator=generator)
        x, y = self.encode(tasks, bits)
        return x, y, tasks

    def stratified(self, per_task: int, seed: int):
        """``(x, y, task)``: ``per_task`` fresh examples of every subtask, in task order."""
        g = torch.Generator().manual_seed(int(seed))
        tasks = torch.arange(self.n_tasks).repeat_interleave(per_task)
        bits = torch.randint(0, 2, (len(tasks), self.n_bits), generator=g)
        x, y = self.encode(tasks, bits)
        return x, y, tasks
