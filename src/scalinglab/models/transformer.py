"""A tiny decoder-only transformer (GPT-style, pre-LayerNorm) for sequence tasks.

Token and learned position embeddings are summed into the *residual stream*
:math:`r_0 \\in \\mathbb{R}^{T \\times d}`; each of ``n_layers`` blocks adds to it

.. math::

    r \\leftarrow r + \\operatorname{Attn}(\\operatorname{LN}(r)), \\qquad
    r \\leftarrow r + \\operatorname{MLP}(\\operatorname{LN}(r)),

and a final LayerNorm and a linear *unembedding* give the next-token logits at every
position. Attention is causal: position :math:`t` mixes only positions :math:`\\le t`,

.. math::

    \\operatorname{softmax}\\Big(\\frac{Q K^\\top}{\\sqrt{d_h}} + M\\Big) V, \\qquad
    M_{ts} = \\begin{cases} 0 & s \\le t \\\\ -\\infty & s > t \\end{cases},

computed per head (``n_heads`` heads of size :math:`d_h = d/n_\\text{heads}`) by
:func:`causal_attention`, written out so the chapter can show it and checked against
:func:`torch.nn.functional.scaled_dot_product_attention` in the tests.

Parameter counts follow Kaplan et al. (2020): ``n_params_non_embedding`` excludes the token
and position embeddings and the unembedding; with ``d_mlp = 4 d`` it is
:math:`\\approx 12\\, n_\\text{layers} d^2` (plus biases and LayerNorms), the :math:`N` of
:math:`C = 6ND`.

``forward(tokens, return_residuals=True)`` also returns the residual stream after the
embedding and after every block, for linear probes of belief states (Shai et al. 2024).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scalinglab.models.mlp import check_positive_int


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal scaled dot-product attention; ``q, k, v`` of shape ``(..., T, d_h)``."""
    t = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        # (B, T, d) -> (B, H, T, d_h)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = causal_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_mlp: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp), nn.GELU(), nn.Linear(d_mlp, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """``TinyTransformer(vocab_size, d_model, n_layers, n_heads, context_length, d_mlp=4*d_model)``.

    ``forward(tokens)`` maps int64 ``(batch, T)`` with ``T <= context_length`` to logits
    ``(batch, T, vocab_size)``. Weights start as in GPT-2: :math:`\\mathcal{N}(0, 0.02^2)`,
    zero biases; ``seed`` makes them a function of the seed alone.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        context_length: int = 16,
        d_mlp: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.d_model = check_positive_int("d_model", d_model)
        self.n_layers = check_positive_int("n_layers", n_layers)
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.context_length = check_positive_int("context_length", context_length)
        self.d_mlp = 4 * d_model if d_mlp is None else check_positive_int("d_mlp", d_mlp)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context_length, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, self.d_mlp) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, vocab_size)

        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.normal_(0.0, 0.02, generator=generator)
                if isinstance(module, nn.Linear):
                    module.bias.zero_()

    @property
    def n_params(self) -> int:
        """All trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    @property
    def n_params_non_embedding(self) -> int:
        """Parameters of the blocks and final LayerNorm (Kaplan's :math:`N`)."""
        embedding = sum(
            p.numel() for m in (self.tok_emb, self.pos_emb, self.unembed) for p in m.parameters()
        )
        return self.n_params - embedding

    def forward(self, tokens: torch.Tensor, return_residuals: bool = False):
        """Logits ``(B, T, vocab)``; with ``return_residuals`` also the list of the
        ``n_layers + 1`` residual streams ``(B, T, d_model)``."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (batch, T), got shape {tuple(tokens.shape)}")
        t = tokens.shape[1]
        if t > self.context_length:
            raise ValueError(f"sequence length {t} exceeds context_length={self.context_length}")
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(t, device=tokens.device))
        residuals = [x]
        for block in self.blocks:
            x = block(x)
            residuals.append(x)
        logits = self.unembed(self.ln_f(x))
        return (logits, residuals) if return_residuals else logits


class LastPosition(nn.Module):
    """Wrap a sequence model so that ``forward`` returns the logits at the last position only.

    Turns a :class:`TinyTransformer` into a classifier for
    :func:`scalinglab.engine.training.train_classifier` (e.g. modular arithmetic ``[a, b, =]``).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)[:, -1, :]
