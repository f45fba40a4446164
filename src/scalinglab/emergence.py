"""Emergence (chapter 7): metric mirages, grokking and belief-state geometry.

Three small experiments with exact ground truth.

Metric mirage (Schaeffer, Miranda & Koyejo 2023)
-------------------------------------------------
A model answers an :math:`L`-token question; at position :math:`i` of example :math:`n` it
gives the correct token probability :math:`p_{ni}`. Sampling the answer, it is entirely
right with probability :math:`\\prod_i p_{ni}`; with a per-token cross-entropy
:math:`\\mathrm{CE}` and :math:`p = e^{-\\mathrm{CE}}` the crude estimate is :math:`p^L`, a
steep function of the loss. Partial-credit metrics (per-token accuracy, the expected
number of wrong tokens :math:`\\approx L(1-p)`) are linear in :math:`p` and change smoothly.
:func:`addition_dataset` and :func:`train_addition_mlps` make the experiment: ``n_digits``-digit
addition learned by two-hidden-layer MLPs of several widths; :func:`answer_metrics` scores them.
:func:`train_addition_ensemble` trains every (width, seed, learning rate) of a scan on the
engine's batched path, and :func:`best_lr_runs` picks each width's learning rate on a
validation set: a knee in the loss of one seed at one shared learning rate need not be one
in the loss of each width at its best.

Grokking (Power et al. 2022; Nanda et al. 2023)
-----------------------------------------------
:class:`SummedEmbeddingMLP` maps ``(a, b)`` to logits over :math:`c = a + b \\bmod p` through a
shared embedding :math:`E` with :math:`h = \\mathrm{ReLU}(E_a + E_b)`, then two linear layers.
:func:`train_grokking` trains it full batch with AdamW on a fraction of the table and logs
train/test accuracy and the weight norm; :func:`first_step_above` finds when an accuracy
first passes a threshold; :func:`fourier_power` measures how much of the embedding lies on
each frequency :math:`k` of the discrete Fourier transform over :math:`a \\in \\mathbb{Z}_p`
(Nanda et al.'s "key frequencies"). Logged during training (``fourier_every``), the
purity and the number of :func:`switched_off` frequencies are progress measures: the
purity grows through the memorisation plateau, long before the test accuracy moves.
:func:`unordered_coverage` gives the effective training fraction of the symmetric model,
which sets the grokking delay of the split controls. :func:`grokking_step_and_purity` reads
the purity at the step a run groks, the same level in every run whatever that step.

Belief-state geometry (Shai et al. 2024)
----------------------------------------
:func:`train_mess3_transformer` trains a :class:`~scalinglab.models.transformer.TinyTransformer`
on fresh Mess3 sequences (:mod:`scalinglab.data.hmm`); :func:`position_cross_entropy` gives
its cross-entropy at every position (to compare with the exact optimum
:math:`H(X_L \\mid X_{<L})`); :func:`fit_linear_probe` and :func:`r2_score` regress the exact
belief states on the residual stream; :func:`probe_summary` collects the page's probe
measurements of one model (the record over seeds).

Sources: R. Schaeffer, B. Miranda, S. Koyejo, "Are Emergent Abilities of Large Language
Models a Mirage?", NeurIPS 2023 (arXiv:2304.15004); A. Power, Y. Burda, H. Edwards,
I. Babuschkin, V. Misra, "Grokking: Generalization Beyond Overfitting on Small Algorithmic
Datasets", arXiv:2201.02177 (2022); N. Nanda, L. Chan, T. Lieberum, J. Smith, J. Steinhardt,
"Progress measures for grokking via mechanistic interpretability", ICLR 2023
(arXiv:2301.05217); A. Shai, S. Marzen, L. Teixeira, A. Gietelink Oldenziel, P. Riechers,
"Transformers Represent Belief State Geometry in their Residual Stream", NeurIPS 2024
(arXiv:2405.15943).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalinglab.data.hmm import HiddenMarkovModel, Mess3
from scalinglab.data.modular import modular_table
from scalinglab.engine.ensemble import MLPEnsemble, StackedAdamW
from scalinglab.engine.training import logged_steps, loss_and_error, take
from scalinglab.models.transformer import TinyTransformer

RECORDS = Path(__file__).parent / "records"

# --------------------------------------------------------------------------- metric mirage


def _digits(v: np.ndarray, n: int) -> np.ndarray:
    """Decimal digits of ``v``, most significant first, shape ``(len(v), n)``."""
    return np.stack([(v // 10**k) % 10 for k in range(n - 1, -1, -1)], axis=1)


def _addition_xy(idx: np.ndarray, n_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot digits of the pairs numbered ``idx`` (``a * 10**n_digits + b``) and the
    digits of their sums."""
    a, b = idx // 10**n_digits, idx % 10**n_digits
    da, db = _digits(a, n_digits), _digits(b, n_digits)
    x = np.zeros((len(idx), 2 * n_digits, 10), dtype=np.float32)
    rows = np.arange(len(idx))[:, None]
    x[rows, np.arange(n_digits), da] = 1.0
    x[rows, n_digits + np.arange(n_digits), db] = 1.0
    return x.reshape(len(idx), -1), _digits(a + b, n_digits + 1).astype(np.int64)


def addition_dataset(
    n_digits: int = 3, n_train: int = 20_000, n_test: int = 5_000, seed: int = 0, n_val: int = 0
) -> dict[str, np.ndarray]:
    """``n_digits``-digit addition ``a + b`` for random ``a, b`` in ``[0, 10**n_digits)``.

    ``x`` is the one-hot code of the digits of ``a`` then ``b`` (float32, width
    ``20 * n_digits``); ``y`` the ``n_digits + 1`` digits of the sum, most significant first
    (int64). Train and test pairs are disjoint. With ``n_val > 0`` also ``x_val, y_val``:
    pairs in neither set, drawn *after* them, so the train and test sets do not depend on
    ``n_val`` (a validation set to pick hyperparameters on, keeping the test set unseen).
    """
    n_pairs = 10 ** (2 * n_digits)
    if n_train + n_test + n_val > n_pairs:
        raise ValueError(f"only {n_pairs} pairs exist, asked for {n_train + n_test + n_val}")
    rng = np.random.default_rng(seed)
    idx = rng.choice(n_pairs, size=n_train + n_test, replace=False)
    x, y = _addition_xy(idx, n_digits)
    out = {
        "x_train": x[:n_train],
        "y_train": y[:n_train],
        "x_test": x[n_train:],
        "y_test": y[n_train:],
    }
    if n_val:
        rest = np.setdiff1d(np.arange(n_pairs), idx, assume_unique=True)
        out["x_val"], out["y_val"] = _addition_xy(rng.choice(rest, n_val, replace=False), n_digits)
    return out


class DigitMLP(nn.Module):
    """Two hidden ReLU layers of ``width``; ``n_positions`` softmaxes over ``n_classes``."""

    def __init__(self, in_dim: int, width: int, n_positions: int, n_classes: int = 10) -> None:
        super().__init__()
        self.n_positions, self.n_classes = n_positions, n_classes
        self.net = nn.Sequential(
            nn.Linear(in_dim, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, n_positions * n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(len(x), self.n_positions, self.n_classes)


def correct_token_probs(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """:math:`p_{ni}`, the probability the model gives the right token, ``(n, L)`` float64."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    return logp.gather(-1, y[..., None])[..., 0].exp().numpy()


def answer_metrics(probs: np.ndarray, correct: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of ``L``-token answers from the correct-token probabilities ``probs (n, L)``.

    - ``expected_exact_match``: mean over examples of :math:`\\prod_i p_{ni}` (sampling);
    - ``p_pow_L``: :math:`p^L` with :math:`p = e^{-\\mathrm{CE}}` (CE the mean per-token loss);
    - ``expected_token_accuracy``: mean :math:`p_{ni}`;
    - ``cross_entropy``: mean :math:`-\\ln p_{ni}`.

    With ``correct`` (bool ``(n, L)``, greedy prediction right) also ``exact_match`` and
    ``token_accuracy`` of greedy decoding, and the per-position accuracies.
    """
    probs = np.asarray(probs, dtype=np.float64)
    length = probs.shape[1]
    ce = float(-np.log(np.clip(probs, 1e-300, None)).mean())
    out = {
        "cross_entropy": ce,
        "expected_exact_match": float(np.prod(probs, axis=1).mean()),
        "p_pow_L": float(math.exp(-ce * length)),
        "expected_token_accuracy": float(probs.mean()),
    }
    if correct is not None:
        correct = np.asarray(correct, dtype=bool)
        out["exact_match"] = float(correct.all(axis=1).mean())
        out["token_accuracy"] = float(correct.mean())
        out["position_accuracy"] = correct.mean(axis=0).tolist()
    return out


def sampled_exact_match(probs: np.ndarray, rng: np.random.Generator) -> float:
    """Exact match of answers *sampled* from the model: position ``i`` of example ``n`` is
    right with probability ``probs[n, i]``, independently. Its expectation is
    ``answer_metrics(probs)["expected_exact_match"]``."""
    probs = np.asarray(probs, dtype=np.float64)
    return float((rng.random(probs.shape) < probs).all(axis=1).mean())


def train_addition_mlps(
    widths: Sequence[int] = (8, 16, 32, 64, 128, 256),
    n_digits: int = 3,
    n_train: int = 20_000,
    n_test: int = 5_000,
    steps: int = 1500,
    batch_size: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    data_seed: int | None = None,
) -> list[dict]:
    """Train one :class:`DigitMLP` per width (Adam, constant ``lr``) and score it on the test set.

    ``seed`` sets the initial weights and the batches, and the data set unless ``data_seed``
    is given. Returns one record per width: ``width``, ``n_params`` and
    :func:`answer_metrics` of the test set, plus ``probs`` and ``correct`` (arrays
    ``(n_test, L)``).
    """
    data = addition_dataset(n_digits, n_train, n_test, seed if data_seed is None else data_seed)
    x, y = torch.as_tensor(data["x_train"]), torch.as_tensor(data["y_train"])
    xt, yt = torch.as_tensor(data["x_test"]), torch.as_tensor(data["y_test"])
    records = []
    for width in widths:
        torch.manual_seed(seed)
        model = DigitMLP(x.shape[1], int(width), y.shape[1])
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            idx = torch.randint(len(x), (batch_size,), generator=gen)
            logits = model(x[idx])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = model(xt)
        probs = correct_token_probs(logits, yt)
        correct = (logits.argmax(-1) == yt).numpy()
        rec = {"width": int(width), "n_params": sum(p.numel() for p in model.parameters())}
        rec.update(answer_metrics(probs, correct))
        rec["probs"], rec["correct"] = probs, correct
        records.append(rec)
    return records


def train_addition_ensemble(
    widths: Sequence[int] = (8, 16, 32, 64, 128, 256),
    seeds: Sequence[int] = (0, 1, 2),
    lrs: Sequence[float] = (1e-3, 3e-3, 1e-2),
    n_digits: int = 3,
    n_train: int = 20_000,
    n_test: int = 5_000,
    n_val: int = 5_000,
    steps: int = 1500,
    batch_size: int = 256,
    log_every: int | None = 250,
    data_seed: int = 0,
    keep_probs: bool = False,
) -> list[dict]:
    """:func:`train_addition_mlps` for every ``(width, seed, lr)``, on the engine's batched path.

    The ``len(seeds) * len(lrs)`` models of one width are the members of one
    :class:`~scalinglab.engine.ensemble.MLPEnsemble` (``init="torch"``: member ``seed`` starts
    with the weights of ``DigitMLP`` after ``torch.manual_seed(seed)``), trained together by
    :class:`~scalinglab.engine.ensemble.StackedAdamW` with one learning rate per member and no
    weight decay (which is Adam). Member ``seed`` draws its mini-batches as
    :func:`train_addition_mlps` does (``torch.randint`` from a generator seeded with
    ``seed``), so the member ``(width, seed=s, lr)`` is the run ``train_addition_mlps(
    (width,), seed=s, lr=lr)`` up to float rounding (``tests/test_emergence.py``). Every model
    sees the same data set (``data_seed``): the seeds vary the initialisation and the batches.

    Returns one JSON-ready record per model: ``width, n_params, seed, lr``, the validation and
    test cross-entropy per digit logged every ``log_every`` steps (``history``), the final
    ``val_cross_entropy`` (to choose the learning rate on), :func:`answer_metrics` of the test
    set and the test ``position_cross_entropy``; with ``keep_probs`` also ``probs`` and
    ``correct`` (arrays ``(n_test, L)``).
    """
    data = addition_dataset(n_digits, n_train, n_test, data_seed, n_val)
    x, y = torch.as_tensor(data["x_train"]), torch.as_tensor(data["y_train"])
    evals = {
        k: (torch.as_tensor(data[f"x_{k}"]), torch.as_tensor(data[f"y_{k}"]))
        for k in ("val", "test")
    }
    n_pos = y.shape[1]
    log = set(logged_steps(steps, log_every))
    members = [(int(s), float(lr)) for s in seeds for lr in lrs]
    records = []
    for width in widths:
        ens = MLPEnsemble(
            x.shape[1],
            [int(width)] * len(members),
            2,
            n_pos * 10,
            [s for s, _ in members],
            init="torch",
        )
        opt = StackedAdamW(ens.parameters(), [lr for _, lr in members])  # AdamW, no decay: Adam
        gens = [torch.Generator().manual_seed(s) for s, _ in members]

        def digit_logits(xs: torch.Tensor, ens: MLPEnsemble = ens) -> torch.Tensor:
            return ens(xs).view(len(members), len(xs), n_pos, 10)  # (M, n, L, 10)

        hist: dict[str, list] = {"step": [], "val_cross_entropy": [], "test_cross_entropy": []}
        for step in range(steps + 1):
            if step in log:
                hist["step"].append(step)
                with torch.no_grad():
                    for k, (xe, ye) in evals.items():
                        ce, _ = loss_and_error("next_token", digit_logits(xe), ye, with_error=False)
                        hist[f"{k}_cross_entropy"].append(ce.tolist())
            if step == steps:
                break
            idx = torch.stack([torch.randint(len(x), (batch_size,), generator=g) for g in gens])
            logits = ens(take(x, idx)).view(len(members), batch_size, n_pos, 10)
            losses, _ = loss_and_error("next_token", logits, take(y, idx), with_error=False)
            opt.zero_grad()
            losses.sum().backward()  # members are independent: each gets its own gradient
            opt.step()
        with torch.no_grad():
            out = {k: digit_logits(xe) for k, (xe, _) in evals.items()}
        for m, (seed, lr) in enumerate(members):
            yv, yt = evals["val"][1], evals["test"][1]
            probs = correct_token_probs(out["test"][m], yt)
            correct = (out["test"][m].argmax(-1) == yt).numpy()
            rec = {
                "width": int(width),
                "n_params": ens.n_params[m],
                "seed": seed,
                "lr": lr,
                "steps": steps,
                "batch_size": batch_size,
                "history": {
                    "step": hist["step"],
                    "val_cross_entropy": [row[m] for row in hist["val_cross_entropy"]],
                    "test_cross_entropy": [row[m] for row in hist["test_cross_entropy"]],
                },
                "val_cross_entropy": float(-np.log(correct_token_probs(out["val"][m], yv)).mean()),
                **answer_metrics(probs, correct),
                "position_cross_entropy": (-np.log(probs)).mean(axis=0).tolist(),
            }
            if keep_probs:
                rec["probs"], rec["correct"] = probs, correct
            records.append(rec)
    return records


def best_lr_runs(records: Sequence[dict], key: str = "val_cross_entropy") -> dict[int, list[dict]]:
    """Per width, the runs (one per seed) at the learning rate whose seed-mean ``key`` is
    lowest: the learning rate is chosen on the validation set, the test numbers reported."""
    out = {}
    for width in sorted({r["width"] for r in records}):
        runs = [r for r in records if r["width"] == width]
        by_lr = {lr: [r for r in runs if r["lr"] == lr] for lr in sorted({r["lr"] for r in runs})}
        best = min(by_lr, key=lambda lr: np.mean([r[key] for r in by_lr[lr]]))
        out[width] = sorted(by_lr[best], key=lambda r: r["seed"])
    return out


# --------------------------------------------------------------------------- grokking


def modular_addition_split(
    p: int = 59, train_fraction: float = 0.4, seed: int = 0, split: str = "ordered"
) -> dict[str, np.ndarray]:
    """The table ``a + b mod p`` split into train and test: ``dict(a_train, b_train, c_train, ...)``.

    ``split="ordered"`` draws a random ``train_fraction`` of the :math:`p^2` ordered pairs
    (so ``(b, a)`` lands in the test set while ``(a, b)`` is in training for a fraction of the
    test set); ``split="unordered"`` draws unordered pairs :math:`\\{a, b\\}` so that both orders
    are always on the same side and commutativity cannot leak test answers.
    """
    if split not in ("ordered", "unordered"):
        raise ValueError(f"split must be 'ordered' or 'unordered', got {split!r}")
    a, b, c = modular_table(p, "+")
    rng = np.random.default_rng(seed)
    if split == "ordered":
        perm = rng.permutation(len(c))
        is_train = np.zeros(len(c), dtype=bool)
        is_train[perm[: int(round(train_fraction * len(c)))]] = True
    else:
        key = np.minimum(a, b) * p + np.maximum(a, b)
        keys = np.unique(key)
        chosen = rng.permutation(keys)[: int(round(train_fraction * len(keys)))]
        is_train = np.isin(key, chosen)
    return {
        "a_train": a[is_train],
        "b_train": b[is_train],
        "c_train": c[is_train],
        "a_test": a[~is_train],
        "b_test": b[~is_train],
        "c_test": c[~is_train],
    }


def commutative_leak(data: dict[str, np.ndarray]) -> float:
    """Fraction of test equations ``(a, b)`` whose mirror ``(b, a)`` is a training equation.

    A model whose input is symmetric in ``a`` and ``b`` (as :class:`SummedEmbeddingMLP`) gets
    these right as soon as it fits the training set: the test accuracy of pure memorisation.
    """
    p = int(max(data["a_train"].max(), data["b_train"].max(), data["a_test"].max())) + 1
    train = np.zeros((p, p), dtype=bool)
    train[data["a_train"], data["b_train"]] = True
    return float(train[data["b_test"], data["a_test"]].mean())


class SummedEmbeddingMLP(nn.Module):
    """``logits = W_3 ReLU(W_2 ReLU(E_a + E_b) + b_2) + b_3`` with one shared embedding ``E``."""

    def __init__(self, p: int, width: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(p, width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, p)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.embed(a) + self.embed(b))
        return self.out(torch.relu(self.hidden(h)))


def weight_norm(model: nn.Module) -> float:
    """:math:`\\lVert\\theta\\rVert_2` over all parameters."""
    return float(torch.sqrt(sum((q.detach() ** 2).sum() for q in model.parameters())))


def train_grokking(
    p: int = 59,
    train_fraction: float = 0.4,
    width: int = 128,
    lr: float = 3e-3,
    betas: tuple[float, float] = (0.9, 0.98),
    weight_decay: float = 1.0,
    steps: int = 3000,
    log_every: int = 10,
    split: str = "ordered",
    seed: int = 0,
    fourier_every: int = 0,
) -> dict:
    """Full-batch AdamW on ``a + b mod p``; logs ``step, train_acc, test_acc, train_loss,
    test_loss, weight_norm`` every ``log_every`` steps (and at 0 and ``steps``).

    With ``fourier_every > 0`` it also logs the embedding's progress measures every
    ``fourier_every`` steps (and at 0 and ``steps``): ``fourier_step``, the
    :func:`fourier_power` spectrum ``fourier_spectrum`` (one list of ``p // 2`` shares per
    logged step) and ``fourier_purity_history`` (:func:`fourier_purity`). They cost a
    ``(p, width)`` FFT each, negligible next to a training step.

    Also returns the final ``embedding`` (``(p, width)`` array) and the run's settings.
    """
    data = modular_addition_split(p, train_fraction, seed, split)
    t = {k: torch.as_tensor(v) for k, v in data.items()}
    torch.manual_seed(seed)
    model = SummedEmbeddingMLP(p, width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    keys = ("step", "train_acc", "test_acc", "train_loss", "test_loss", "weight_norm")
    hist: dict = {k: [] for k in keys}
    if fourier_every:
        for k in ("fourier_step", "fourier_spectrum", "fourier_purity_history"):
            hist[k] = []
    for step in range(steps + 1):
        logits = model(t["a_train"], t["b_train"])
        loss = F.cross_entropy(logits, t["c_train"])
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                test_logits = model(t["a_test"], t["b_test"])
                hist["step"].append(step)
                hist["train_acc"].append(float((logits.argmax(1) == t["c_train"]).float().mean()))
                hist["test_acc"].append(
                    float((test_logits.argmax(1) == t["c_test"]).float().mean())
                )
                hist["train_loss"].append(float(loss.detach()))
                hist["test_loss"].append(float(F.cross_entropy(test_logits, t["c_test"])))
                hist["weight_norm"].append(weight_norm(model))
        if fourier_every and (step % fourier_every == 0 or step == steps):
            emb = model.embed.weight.detach().numpy()
            hist["fourier_step"].append(step)
            hist["fourier_spectrum"].append(fourier_power(emb).tolist())
            hist["fourier_purity_history"].append(fourier_purity(emb))
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    hist["embedding"] = model.embed.weight.detach().numpy().copy()
    hist["config"] = {
        "p": p,
        "train_fraction": train_fraction,
        "width": width,
        "lr": lr,
        "betas": list(betas),
        "weight_decay": weight_decay,
        "steps": steps,
        "log_every": log_every,
        "split": split,
        "seed": seed,
    }
    if fourier_every:
        hist["config"]["fourier_every"] = fourier_every
    return hist


def first_step_above(steps: Sequence[int], values: Sequence[float], threshold: float):
    """The first logged step at which ``values`` reaches ``threshold`` (``None`` if never)."""
    for s, v in zip(steps, values):
        if v >= threshold:
            return int(s)
    return None


def grokking_step_and_purity(run: dict, threshold: float = 0.9) -> tuple[int | None, float | None]:
    """The first logged step at which a :func:`train_grokking` run's test accuracy reaches
    ``threshold``, and the embedding's Fourier purity there (linear interpolation between
    the purities logged every ``fourier_every`` steps); ``(None, None)`` if never."""
    step = first_step_above(run["step"], run["test_acc"], threshold)
    if step is None:
        return None, None
    return step, float(np.interp(step, run["fourier_step"], run["fourier_purity_history"]))


def fourier_power(embedding: np.ndarray) -> np.ndarray:
    """Fraction of the embedding's (mean-removed) energy on each frequency ``k = 1..p//2``.

    The embedding ``E`` of shape ``(p, d)`` is a function of :math:`a \\in \\mathbb{Z}_p` in
    each of its ``d`` columns; its discrete Fourier transform over ``a`` puts the energy of
    frequencies ``k`` and ``p - k`` (the same real cosine/sine pair) together. The
    returned array sums to 1 (the constant ``k = 0`` part is removed).
    """
    e = np.asarray(embedding, dtype=np.float64)
    e = e - e.mean(axis=0)
    spec = (np.abs(np.fft.fft(e, axis=0)) ** 2).sum(axis=1)
    p = e.shape[0]
    power = np.array([spec[k] + spec[p - k] for k in range(1, p // 2 + 1)])
    return power / power.sum()


def fourier_purity(embedding: np.ndarray) -> float:
    """Mean over embedding dimensions of the share of the dimension's energy (mean removed)
    on its single strongest frequency ``k`` (``k`` and ``p - k`` together): 1 for pure waves
    :math:`\\cos(2\\pi k a / p + \\phi)`, about ``3/(p//2)``-ish for random vectors."""
    e = np.asarray(embedding, dtype=np.float64)
    e = e - e.mean(axis=0)
    p = e.shape[0]
    spec = np.abs(np.fft.fft(e, axis=0)) ** 2  # (p, d)
    power = spec[1 : p // 2 + 1] + spec[p - 1 : p - p // 2 - 1 : -1]
    return float((power.max(axis=0) / power.sum(axis=0)).mean())


def switched_off(spectrum: Sequence[float], threshold: float = 0.01) -> int:
    """Number of frequencies whose share of the embedding's energy is below ``threshold``.

    The even share of ``p // 2 = 29`` frequencies is ``1/29 = 0.034``; a share under 0.01
    (under a third of even) counts as switched off. A random embedding has none: each share
    is a mean of ``2 * width`` squared Gaussians, ``1/29`` within a few per cent.
    """
    return int(np.sum(np.asarray(spectrum, dtype=np.float64) < threshold))


def unordered_coverage(data: dict[str, np.ndarray]) -> float:
    """Fraction of the unordered facts :math:`\\{a, b\\}` with at least one order in training.

    For a model symmetric in ``a`` and ``b`` this is its effective training fraction: an
    ordered split at fraction ``f`` covers :math:`1 - (1 - f)^2` of the off-diagonal facts.
    """
    p = int(max(data["a_train"].max(), data["b_train"].max(), data["a_test"].max())) + 1
    lo = np.minimum(data["a_train"], data["b_train"])
    hi = np.maximum(data["a_train"], data["b_train"])
    return float(len(np.unique(lo * p + hi)) / (p * (p + 1) // 2))


# --------------------------------------------------------------------------- belief states


def train_mess3_transformer(
    hmm: HiddenMarkovModel | None = None,
    seq_len: int = 10,
    d_model: int = 32,
    n_layers: int = 2,
    n_heads: int = 1,
    steps: int = 1500,
    batch_size: int = 256,
    lr: float = 3e-3,
    log_every: int = 50,
    seed: int = 0,
) -> tuple[TinyTransformer, dict]:
    """Train a :class:`TinyTransformer` on fresh sequences of ``hmm`` (default: Mess3).

    Every step samples a new batch of ``seq_len + 1`` tokens (infinite data, nothing to
    over-fit); position ``t`` of the input (0-based) sees tokens ``1..t+1`` and predicts
    token ``t+2``, so the residual stream there is probed against the belief
    ``hmm.belief_states(tokens)[:, t]``. Returns the model (in eval mode) and the
    training-loss history ``dict(step, train_loss)``.
    """
    hmm = Mess3() if hmm is None else hmm
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TinyTransformer(
        hmm.n_tokens, d_model, n_layers, n_heads, context_length=seq_len, seed=seed
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist: dict = {"step": [], "train_loss": []}
    for step in range(steps):
        tokens, _ = hmm.sample(batch_size, seq_len + 1, rng)
        tok = torch.as_tensor(tokens)
        logits = model(tok[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, hmm.n_tokens), tok[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            hist["step"].append(step)
            hist["train_loss"].append(float(loss.detach()))
    model.eval()
    return model, hist


def position_cross_entropy(model: nn.Module, tokens: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of predicting ``tokens[:, t+1]`` from ``tokens[:, :t+1]``, per ``t``.

    Entry ``t`` (0-based) is the loss on the ``(t+2)``-th token given ``t+1`` tokens, whose
    optimum is ``hmm.conditional_entropy(t + 2)``.
    """
    tok = torch.as_tensor(tokens)
    with torch.no_grad():
        logits = model(tok[:, :-1])
    logp = torch.log_softmax(logits.double(), -1).gather(-1, tok[:, 1:, None])[..., 0]
    return (-logp.mean(0)).numpy()


def residual_features(model: TinyTransformer, tokens: np.ndarray, layer: int = -1) -> np.ndarray:
    """Residual stream ``(n_seq, T, d_model)`` after block ``layer`` (0 = the embeddings)."""
    with torch.no_grad():
        _, residuals = model(torch.as_tensor(tokens), return_residuals=True)
    return residuals[layer].double().numpy()


def token_position_onehot(tokens: np.ndarray, n_tokens: int) -> np.ndarray:
    """Indicator features of the pair (token at ``t``, position ``t``): ``(n, T, n_tokens * T)``.

    A least-squares probe on them predicts, for each of the ``n_tokens * T`` cells, the mean
    target of that cell: the best any function of (last token, position) can do, the
    ceiling of a probe on the token-plus-position embedding.
    """
    tokens = np.asarray(tokens)
    n, length = tokens.shape
    out = np.zeros((n, length, n_tokens * length))
    t = np.arange(length)
    out[np.arange(n)[:, None], t, tokens * length + t] = 1.0
    return out


def fit_linear_probe(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Least-squares affine map: ``W`` of shape ``(d + 1, k)`` with ``[X, 1] W ~ Y``."""
    x = np.asarray(features, dtype=np.float64).reshape(-1, np.shape(features)[-1])
    y = np.asarray(targets, dtype=np.float64).reshape(len(x), -1)
    x1 = np.hstack([x, np.ones((len(x), 1))])
    w, *_ = np.linalg.lstsq(x1, y, rcond=None)
    return w


def apply_linear_probe(w: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``[X, 1] W`` for features of any leading shape."""
    x = np.asarray(features, dtype=np.float64)
    return x @ w[:-1] + w[-1]


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination averaged over outputs (scikit-learn's default)."""
    yt = np.asarray(y_true, dtype=np.float64).reshape(-1, np.shape(y_true)[-1])
    yp = np.asarray(y_pred, dtype=np.float64).reshape(yt.shape)
    ss_res = ((yt - yp) ** 2).sum(0)
    ss_tot = ((yt - yt.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - ss_res / ss_tot))


def simplex_xy(beliefs: np.ndarray) -> np.ndarray:
    """Project points of the 2-simplex to the plane (vertices of an equilateral triangle)."""
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    return np.asarray(beliefs) @ corners


def probe_summary(
    model: TinyTransformer,
    hmm: HiddenMarkovModel,
    n_seq: int = 4000,
    n_fit: int = 2000,
    seq_len: int = 10,
    sample_seed: int = 1,
) -> dict:
    """The page's probe measurements of one trained model, as plain numbers.

    Samples ``n_seq`` sequences (generator seeded with ``sample_seed``), fits
    :func:`fit_linear_probe` from each feature set to the exact beliefs on the first
    ``n_fit`` and returns the held-out :func:`r2_score` of each (``r2``: the (last token,
    position) lookup, the residual stream after blocks 0, 1, 2, the logits, ``q`` and
    ``log q``), the fraction of held-out positions whose probed belief (final block) has a
    negative coordinate (``outside_simplex``) and the exact excess cross-entropy per
    position (``excess``, the mean KL from the exact next-token distribution).
    """
    tokens, _ = hmm.sample(n_seq, seq_len, np.random.default_rng(sample_seed))
    beliefs = hmm.belief_states(tokens)
    p_exact = hmm.next_token_probs(beliefs)
    with torch.no_grad():
        logits = model(torch.as_tensor(tokens)).double()
    q = torch.softmax(logits, dim=-1).numpy()
    features = {
        "lookup": token_position_onehot(tokens, hmm.n_tokens),
        **{f"block {k}": residual_features(model, tokens, k) for k in range(model.n_layers + 1)},
        "logits": logits.numpy(),
        "q": q,
        "log q": np.log(q),
    }
    r2, predicted = {}, None
    for name, feats in features.items():
        pred = apply_linear_probe(fit_linear_probe(feats[:n_fit], beliefs[:n_fit]), feats[n_fit:])
        r2[name] = r2_score(beliefs[n_fit:], pred)
        if name == f"block {model.n_layers}":
            predicted = pred
    return {
        "r2": r2,
        "outside_simplex": float((predicted < 0).any(axis=-1).mean()),
        "excess": (p_exact * np.log(p_exact / q)).sum(-1).mean(0).tolist(),
    }


def mess3_records(config: dict) -> list[dict]:
    """The runs of an ``"experiment": "mess3"`` config: for every seed of ``config["seeds"]``,
    :func:`train_mess3_transformer` with ``config["training"]`` and its :func:`probe_summary`
    with ``config["probe"]``."""
    records = []
    for seed in config["seeds"]:
        model, _ = train_mess3_transformer(Mess3(), seed=seed, **config["training"])
        records.append(
            {
                "seed": seed,
                "n_params": model.n_params,
                **probe_summary(model, Mess3(), **config["probe"]),
            }
        )
    return records


# --------------------------------------------------------------------------- records


def load_records(name: str) -> list[dict]:
    """Read ``records/<name>.jsonl`` (one JSON object per line)."""
    with open(RECORDS / f"{name}.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def grokking_records(config: dict) -> list[dict]:
    """Every grokking run of a config (``{"defaults": {...}, "runs": [kwargs, ...]}``).

    Each record holds the run's ``config``, its logged history and the final embedding's
    :func:`fourier_power` (the embedding itself is not stored).
    """
    records = []
    for kwargs in config["runs"]:
        hist = train_grokking(**{**config.get("defaults", {}), **kwargs})
        emb = hist.pop("embedding")
        hist["fourier_power"] = fourier_power(emb).tolist()
        hist["fourier_purity"] = fourier_purity(emb)
        records.append(hist)
    return records


def addition_records(config: dict) -> list[dict]:
    """The runs of an ``"experiment": "addition"`` config: :func:`train_addition_ensemble`
    with the config's ``settings`` as keyword arguments."""
    return train_addition_ensemble(**config["settings"])


def experiment_records(config: dict) -> list[dict]:
    """Records of a chapter-7 config: ``config["experiment"]`` is ``"grokking"`` (the default,
    :func:`grokking_records`), ``"addition"`` (:func:`addition_records`) or ``"mess3"``
    (:func:`mess3_records`)."""
    runners = {"grokking": grokking_records, "addition": addition_records, "mess3": mess3_records}
    kind = config.get("experiment", "grokking")
    if kind not in runners:
        raise ValueError(f"unknown experiment {kind!r}; choose one of {sorted(runners)}")
    return runners[kind](config)


def main(argv=None) -> None:
    """``python -m scalinglab.emergence CONFIG.json --out records.jsonl`` (1 thread, CPU)."""
    from scalinglab.sweep_cli import records_main

    records_main(experiment_records, main.__doc__, argv)


if __name__ == "__main__":
    main()
