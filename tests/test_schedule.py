"""Learning-rate schedules of the engine against torch.optim.lr_scheduler (the reference)."""

import numpy as np
import pytest
import torch

from scalinglab.engine.ensemble import MLPEnsemble, train_ensemble
from scalinglab.engine.training import fit, lr_factor
from scalinglab.models.mlp import MLP


def torch_lrs(total: int, warmup: int, peak: float = 0.01, final_ratio: float = 0.1):
    """The learning rate of each update from torch's own schedulers (warmup, then cosine)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    warm = torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, total_iters=warmup - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total - warmup, peak * final_ratio)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[warmup])
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("total, warmup", [(100, 5), (37, 3), (1000, 50)])
def test_cosine_matches_torch_schedulers(total, warmup):
    ours = np.array([0.01 * lr_factor(s, total, "cosine", warmup) for s in range(total)])
    np.testing.assert_allclose(ours, torch_lrs(total, warmup), rtol=1e-9, atol=1e-12)
    assert ours[warmup] == pytest.approx(0.01)  # peak right after warmup
    # the last update is one step short of the cosine's end: within 3 % of 10x below the peak
    assert 0.001 < ours[-1] < 0.001 * 1.03


def test_constant_and_bad_arguments():
    assert [lr_factor(s, 10, "constant", 2) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        lr_factor(0, 10, "linear")
    with pytest.raises(ValueError):
        lr_factor(0, 10, "cosine", warmup=10)


def test_ensemble_schedule_reproduces_lambdalr_fit():
    """A scheduled ensemble member equals torch AdamW + LambdaLR on the same model and batches
    (up to float rounding), for two members with different peak learning rates."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 5)).astype(np.float32)
    y = rng.integers(0, 3, 256)
    data = {"x_train": x, "y_train": y, "x_test": x[:64], "y_test": y[:64]}
    kw = dict(steps=60, batch_size=32, log_every=None, schedule="cosine", warmup=6)
    ens = MLPEnsemble(5, [7, 7], 1, 3, seeds=[1, 2])
    train_ensemble(ens, data, lr=[3e-3, 2e-2], weight_decay=0.1, **kw)
    for m, (seed, lr) in enumerate([(1, 3e-3), (2, 2e-2)]):
        net = MLP(5, 7, 1, 3, seed=seed)
        fit(net, data, "classification", lr=lr, weight_decay=0.1, seed=seed, **kw)
        ref = net.linears[0].weight.detach()
        ours = ens.member(m).linears[0].weight.detach()
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    # and the schedule matters: a constant learning rate ends elsewhere
    net = MLP(5, 7, 1, 3, seed=2)
    fit(
        net,
        data,
        "classification",
        lr=2e-2,
        weight_decay=0.1,
        seed=2,
        **{**kw, "schedule": "constant"},
    )
    assert (net.linears[0].weight - ens.member(1).linears[0].weight).abs().max() > 1e-3
