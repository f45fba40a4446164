"""Shards: split a sweep into N independent jobs, check their records and merge them.

A sweep (:mod:`scalinglab.engine.sweep`) trains its grid as batched *groups*
(:func:`~scalinglab.engine.sweep.plan_groups`): models that share ``n_train`` and a width
bucket train together as one ensemble. A shard is a set of whole groups, so

- a model is trained in the same group, with the same neighbours and padding, whether the
  sweep runs in one process or in N shards: on the same machine its records are the same,
  bit for bit, and merging the shards gives the file of an unsharded run;
- the partition depends only on the config and N: each group's cost is a whole number of
  FLOPs computed from the grid (:mod:`scalinglab.engine.flops`), never a timing, so every
  machine, device and task order computes the same shards.

Balancing by cost
-----------------
A group of :math:`M` models padded to width :math:`w_\\max`, trained for :math:`S` steps of
:math:`B` examples and evaluated at :math:`L` logged steps on its :math:`n` training and
:math:`n_\\text{test}` test examples, costs

.. math::

    C = M \\left[ S B\\, c_\\text{train}(w_\\max) + L (n + n_\\text{test})\\, c_\\text{fwd}(w_\\max)\\right]

FLOPs, with :math:`c_\\text{train}` and :math:`c_\\text{fwd}` the per-example training and
forward matmul FLOPs of :mod:`scalinglab.engine.flops`. Groups go to shards by the
longest-processing-time rule (Graham 1969): largest cost first, each to the shard with the
least cost so far (ties: the earlier group, the lower shard). Its makespan is at most
:math:`4/3 - 1/(3N)` of the best possible one; with whole groups as the unit a shard can
still not be cheaper than the most expensive group. More shards than groups leave some
shards empty.

Merging
-------
:func:`merge_records` takes the records of every shard file, checks that each model of the
grid has its ``final`` record exactly once (naming each missing or duplicated model and its
shard) and returns the records in the order of an unsharded run: groups in plan order,
models in group order, steps in order.

Source: R. L. Graham, "Bounds on multiprocessing timing anomalies", SIAM J. Appl. Math. 17
(1969) 416-429.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scalinglab.engine.flops import mlp_forward_flops, mlp_train_flops_per_example
from scalinglab.engine.sweep import SweepGrid, _dims, iter_sweep, model_id, plan_groups, run_steps
from scalinglab.engine.sweep_config import load_records
from scalinglab.engine.training import logged_steps

__all__ = [
    "MergeError",
    "ShardPlan",
    "merge_records",
    "parse_shard",
    "plan_shards",
    "shard_file",
    "shard_status",
    "shards_from_names",
]

# The defaults of iter_sweep, so that a config without "lr" plans the models it trains.
_SWEEP_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(iter_sweep).parameters.items()
    if p.default is not inspect.Parameter.empty
}


class MergeError(ValueError):
    """Shard records that do not make up the grid exactly once; the message names why."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``; a ``ValueError`` says what is wrong."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"expected I/N (shard I of N, counted from 0), got {text!r}")
    i, n = int(match[1]), int(match[2])
    if n < 1 or i >= n:
        raise ValueError(f"shard {i}/{n}: need N >= 1 and 0 <= I < N")
    return i, n


@dataclass(frozen=True)
class Group:
    """One batched group of the sweep: its models (by :func:`model_id`) and its cost."""

    models: tuple[tuple, ...]
    flops: int


@dataclass(frozen=True)
class ShardPlan:
    """The groups of a sweep in plan order and the shard each one belongs to."""

    n_shards: int
    groups: tuple[Group, ...]
    shard_of_group: tuple[int, ...]

    def models(self, shard: int | None = None) -> list[tuple]:
        """Model ids of one shard (or of the whole sweep), in the order of an unsharded run."""
        return [
            m
            for g, s in zip(self.groups, self.shard_of_group)
            if shard is None or s == shard
            for m in g.models
        ]

    def flops(self, shard: int) -> int:
        """Estimated cost of a shard in FLOPs (see the module docstring)."""
        return sum(g.flops for g, s in zip(self.groups, self.shard_of_group) if s == shard)

    def shard_of(self) -> dict[tuple, int]:
        """``{model id: shard}`` for every model of the sweep."""
        return {m: s for g, s in zip(self.groups, self.shard_of_group) for m in g.models}


def group_flops(
    widths: Sequence[int],
    depth: int,
    in_dim: int,
    out_dim: int,
    n_train: int,
    n_test: int,
    steps: int,
    batch_size: int | None,
    n_logged: int,
) -> int:
    """FLOPs of training one group padded to ``max(widths)`` (formula in the module docstring)."""
    width = max(widths)
    per_step = n_train if batch_size is None or batch_size >= n_train else int(batch_size)
    train = steps * per_step * mlp_train_flops_per_example(in_dim, width, depth, out_dim)
    evaluate = n_logged * (n_train + n_test) * mlp_forward_flops(in_dim, width, depth, out_dim)
    return len(widths) * (train + evaluate)


def longest_first(costs: Sequence[int], n_shards: int) -> list[int]:
    """Assign jobs of integer ``costs`` to ``n_shards`` bins, largest first to the lightest bin.

    Deterministic: ties between jobs go by position, ties between bins by index.
    """
    load = [0] * n_shards
    shard = [0] * len(costs)
    for k in sorted(range(len(costs)), key=lambda k: (-costs[k], k)):
        target = min(range(n_shards), key=lambda s: (load[s], s))
        shard[k] = target
        load[target] += costs[k]
    return shard


def plan_shards(
    grid: SweepGrid, dataset: Mapping, task: str, training: Mapping, n_shards: int
) -> ShardPlan:
    """Split the sweep of ``grid`` (trained with the ``training`` keyword arguments of
    :func:`~scalinglab.engine.sweep.iter_sweep`) into ``n_shards`` shards of whole groups."""
    if not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"the number of shards must be an integer >= 1, got {n_shards!r}")
    kw = {**_SWEEP_DEFAULTS, **training}
    in_dim, out_dim = _dims(dataset, task)
    n_test = len(dataset["x_test"])

    def per_example(width: int) -> float:  # as iter_sweep: the same points left out
        return mlp_train_flops_per_example(in_dim, width, grid.depth, out_dim)

    groups = []
    for members in plan_groups(
        grid, kw["lr"], kw["weight_decay"], kw["max_models_per_group"], (), per_example
    ):
        ids = tuple(model_id({**p, "depth": grid.depth}) for p in members)
        n_train = members[0]["n_train"]
        steps, log_at = run_steps(grid, n_train, kw["batch_size"])
        cost = group_flops(
            [p["width"] for p in members],
            grid.depth,
            in_dim,
            out_dim,
            n_train,
            n_test,
            steps,
            kw["batch_size"],
            len(logged_steps(steps, kw["log_every"], log_at)),
        )
        groups.append(Group(ids, cost))
    shards = longest_first([g.flops for g in groups], n_shards)
    return ShardPlan(n_shards, tuple(groups), tuple(shards))


def plan_config_shards(config: dict, n_shards: int) -> ShardPlan:
    """:func:`plan_shards` for a sweep config (builds its data set for the dimensions)."""
    from scalinglab.engine.sweep_config import prepare_sweep

    grid, dataset, task, training = prepare_sweep(config)
    return plan_shards(grid, dataset, task, training, n_shards)


# --------------------------------------------------------------------------- shard files
def shard_file(out: str | os.PathLike, shard: int, n_shards: int) -> Path:
    """Where a sharded run of ``out`` keeps shard ``shard``'s records:
    ``runs/x.jsonl`` -> ``runs/x.shards/shard-2-of-4.jsonl``."""
    out = Path(out)
    return out.parent / f"{out.stem}.shards" / f"shard-{shard}-of-{n_shards}.jsonl"


def shards_from_names(files: Sequence[str | os.PathLike]) -> int | None:
    """The N of files named ``...-of-N.jsonl`` (as :func:`shard_file` names them), if they
    all agree; else ``None``."""
    found = {m[1] for f in files if (m := re.search(r"-of-(\d+)\.jsonl$", str(f)))}
    if len(found) == 1 and all(re.search(r"-of-\d+\.jsonl$", str(f)) for f in files):
        return int(found.pop())
    return None


def _describe(model: tuple) -> str:
    width, depth, n_train, seed, lr, wd = model
    return f"width={width} depth={depth} n_train={n_train} seed={seed} lr={lr} weight_decay={wd}"


def _listing(lines: list[str], limit: int = 10) -> str:
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n  " + "\n  ".join(lines[:limit]) + more


def _read(files: Iterable[str | os.PathLike]) -> list[tuple[str, list[dict]]]:
    out = []
    for f in files:
        path = Path(f)
        if not path.exists():
            raise MergeError(f"{path}: no such file")
        out.append((str(path), load_records(path)))
    return out


def merge_records(plan: ShardPlan, files: Sequence[str | os.PathLike]) -> list[dict]:
    """The records of every model of ``plan``, read from the shard ``files``, in the order of
    an unsharded run. Raises :class:`MergeError` naming every missing model (and its shard),
    every model finished in more than one place and every record that is not of this grid."""
    shard_of = plan.shard_of()
    n = plan.n_shards
    finals: dict[tuple, list[str]] = {}
    unknown: list[str] = []
    records_of: dict[tuple, list[dict]] = {}
    for name, records in _read(files):
        here: dict[tuple, list[dict]] = {}
        for r in records:
            try:
                key = model_id(r)
            except KeyError:
                raise MergeError(f"{name}: a line that is not a sweep record: {r}") from None
            if key not in shard_of:
                unknown.append(f"{_describe(key)} in {name}")
                continue
            here.setdefault(key, []).append(r)
            if r.get("final"):
                finals.setdefault(key, []).append(name)
        for key, rs in here.items():
            if name in finals.get(key, ()):
                records_of[key] = rs
    problems = []
    missing = [m for m in plan.models() if m not in finals]
    if missing:
        problems.append(
            f"{len(missing)} of {len(shard_of)} models have no final record:"
            + _listing([f"{_describe(m)} (shard {shard_of[m]}/{n})" for m in missing])
        )
    twice = [m for m in plan.models() if len(finals.get(m, ())) > 1]
    if twice:
        problems.append(
            f"{len(twice)} models are finished more than once:"
            + _listing(
                [
                    f"{_describe(m)} (shard {shard_of[m]}/{n}) in {', '.join(finals[m])}"
                    for m in twice
                ]
            )
        )
    if unknown:
        problems.append(
            f"{len(unknown)} records are of models not in this config's grid:" + _listing(unknown)
        )
    if problems:
        raise MergeError("\n".join(problems))
    return [r for m in plan.models() for r in sorted(records_of[m], key=lambda r: r["steps"])]


@dataclass(frozen=True)
class ShardProgress:
    """How far one shard is: finished models of ``total``, and its estimated FLOPs."""

    shard: int
    done: int
    total: int
    flops: int

    @property
    def complete(self) -> bool:
        return self.done == self.total


def shard_status(plan: ShardPlan, files: Sequence[str | os.PathLike]) -> list[ShardProgress]:
    """Finished models per shard, counting the ``final`` records found in any of ``files``
    (files that do not exist yet count as empty)."""
    finished = set()
    for f in files:
        if Path(f).exists():
            finished |= {model_id(r) for r in load_records(f) if r.get("final")}
    return [
        ShardProgress(
            s, sum(m in finished for m in plan.models(s)), len(plan.models(s)), plan.flops(s)
        )
        for s in range(plan.n_shards)
    ]


def n_shards_of(files: Sequence[str | os.PathLike], n_shards: int | None = None) -> int:
    """The number of shards: ``n_shards`` if given, else the N in the files' names
    (:func:`shards_from_names`), else the number of files."""
    if n_shards is not None:
        return n_shards
    return shards_from_names(files) or len(files)


def merge_files(
    config: dict,
    out: str | os.PathLike,
    files: Sequence[str | os.PathLike],
    n_shards: int | None = None,
    force: bool = False,
) -> int:
    """Merge the shard ``files`` of the sweep ``config`` into ``out``; return the record count.

    ``out`` is written only when every model is there exactly once (:func:`merge_records`),
    in one step (a temporary file renamed), and is not overwritten unless ``force``.
    """
    from scalinglab.engine.sweep_config import OutputExistsError, write_records

    out = Path(out)
    if out.exists() and out.stat().st_size > 0 and not force:
        raise OutputExistsError(f"{out} already holds records: overwrite it (--force)")
    if any(Path(f).resolve() == out.resolve() for f in files):
        raise MergeError(f"{out} is one of the shard files; merge into another file")
    plan = plan_config_shards(config, n_shards_of(files, n_shards))
    records = merge_records(plan, files)
    write_records(records, out)
    return len(records)
