"""Published neural scaling laws, as frozen dataclasses with their sources.

Losses are in nats per token; ``N`` counts parameters, ``D`` training tokens and ``C``
training compute. Use these constants instead of retyping them, so that every number
on the course pages traces back to one cited place.

Sources
-------
- **Kaplan et al. 2020**: J. Kaplan, S. McCandlish, T. Henighan, T. B. Brown, B. Chess,
  R. Child, S. Gray, A. Radford, J. Wu, D. Amodei. *Scaling Laws for Neural Language
  Models*. arXiv:2001.08361, 2020. Eqs. (1.1)-(1.3) and (1.5), section 1.2.
- **Hoffmann et al. 2022**: J. Hoffmann, S. Borgeaud, A. Mensch, E. Buchatskaya, T. Cai,
  E. Rutherford, D. de Las Casas, L. A. Hendricks, J. Welbl, A. Clark, T. Hennigan,
  E. Noland, K. Millican, G. van den Driessche, B. Damoc, A. Guy, S. Osindero,
  K. Simonyan, E. Elsen, J. W. Rae, O. Vinyals, L. Sifre. *Training Compute-Optimal
  Large Language Models*. NeurIPS 2022, arXiv:2203.15556. Approach 3, eq. (10);
  Table 2 (exponents of the three approaches); section 4 (Chinchilla: 70B parameters,
  1.4T tokens, same compute as Gopher, 5.76e23 FLOPs).
- **Besiroglu et al. 2024**: T. Besiroglu, E. Erdil, M. Barnett, J. You. *Chinchilla
  Scaling: A replication attempt*. arXiv:2404.10102, 2024 (Epoch AI). Their refit of
  Hoffmann et al.'s approach 3 on data extracted from the paper's Figure 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "KaplanLaw",
    "ChinchillaLaw",
    "KAPLAN_2020",
    "HOFFMANN_2022",
    "BESIROGLU_2024",
    "HOFFMANN_2022_UNROUNDED",
    "CHINCHILLA_MODEL",
    "TrainedModel",
    "PF_DAY",
]

#: One petaflop/s-day in FLOPs: 1e15 FLOP/s x 86400 s (Kaplan et al. 2020, section 1.3).
PF_DAY = 1e15 * 86400.0


@dataclass(frozen=True)
class KaplanLaw:
    """Kaplan et al. (2020) power laws, with **no irreducible term**.

    .. math:: L(N) = (N_c/N)^{\\alpha_N}, \\quad L(D) = (D_c/D)^{\\alpha_D}, \\quad
              L(C_{\\min}) = (C_c^{\\min}/C_{\\min})^{\\alpha_C^{\\min}}

    (eqs. 1.1-1.3), ``N`` counting non-embedding parameters, ``D`` tokens and ``C`` in
    PF-days; and the joint law (eq. 1.5)

    .. math:: L(N, D) = \\Big[(N_c/N)^{\\alpha_N/\\alpha_D} + D_c/D\\Big]^{\\alpha_D}.
    """

    alpha_N: float = 0.076
    N_c: float = 8.8e13
    alpha_D: float = 0.095
    D_c: float = 5.4e13
    alpha_C: float = 0.050
    C_c: float = 3.1e8  # PF-days
    #: compute-optimal model size grows as N ∝ C^0.73 (Kaplan et al. 2020; the value
    #: Hoffmann et al. 2022 list for them in Table 2).
    N_opt_exponent: float = 0.73
    source: str = "Kaplan et al. 2020, arXiv:2001.08361, eqs. (1.1)-(1.3), (1.5)"

    def loss_N(self, N) -> np.ndarray:
        """:math:`L(N)`: models trained to convergence on enough data."""
        return (self.N_c / np.asarray(N, dtype=np.float64)) ** self.alpha_N

    def loss_D(self, D) -> np.ndarray:
        """:math:`L(D)`: large models trained with early stopping on ``D`` tokens."""
        return (self.D_c / np.asarray(D, dtype=np.float64)) ** self.alpha_D

    def loss_C(self, C_pf_days) -> np.ndarray:
        """:math:`L(C_{\\min})`: compute-efficient training with ``C`` PF-days."""
        return (self.C_c / np.asarray(C_pf_days, dtype=np.float64)) ** self.alpha_C

    def loss_ND(self, N, D) -> np.ndarray:
        """Joint :math:`L(N, D)` of eq. (1.5)."""
        N = np.asarray(N, dtype=np.float64)
        D = np.asarray(D, dtype=np.float64)
        return ((self.N_c / N) ** (self.alpha_N / self.alpha_D) + self.D_c / D) ** self.alpha_D


@dataclass(frozen=True)
class ChinchillaLaw:
    """:math:`L(N, D) = E + A/N^{\\alpha} + B/D^{\\beta}` (Hoffmann et al. 2022, eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str = ""

    def __call__(self, N, D) -> np.ndarray:
        N = np.asarray(N, dtype=np.float64)
        D = np.asarray(D, dtype=np.float64)
        return self.E + self.A * N ** (-self.alpha) + self.B * D ** (-self.beta)

    loss = __call__

    @property
    def a(self) -> float:
        """Exponent of :math:`N_{\\rm opt} \\propto C^a`, :math:`a = \\beta/(\\alpha+\\beta)`."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of :math:`D_{\\rm opt} \\propto C^b`, :math:`b = \\alpha/(\\alpha+\\beta)`."""
        return self.alpha / (self.alpha + self.beta)


#: Kaplan et al. (2020), eqs. (1.1)-(1.3).
KAPLAN_2020 = KaplanLaw()

#: Hoffmann et al. (2022), approach 3, eq. (10).
HOFFMANN_2022 = ChinchillaLaw(
    E=1.69,
    A=406.4,
    B=410.7,
    alpha=0.34,
    beta=0.28,
    source="Hoffmann et al. 2022, arXiv:2203.15556, approach 3, eq. (10)",
)

#: Hoffmann et al.'s approach-3 estimates *before rounding* (from the paper's TeX source), as
#: used by Besiroglu et al. (2024): ``true_params`` = (log A, log B, log E, alpha, beta) =
#: (6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083) in their analysis notebook,
#: github.com/epoch-research/analyzing-chinchilla, data_analysis.ipynb (commit 9225883).
#: The rounded eq. (10) constants give ~93 tokens per parameter at Chinchilla's budget,
#: these ~59, the refit ~18.
HOFFMANN_2022_UNROUNDED = ChinchillaLaw(
    E=float(np.exp(0.5267228)),
    A=float(np.exp(6.0073404)),
    B=float(np.exp(6.0179186)),
    alpha=0.33917084,
    beta=0.2849083,
    source=(
        "Hoffmann et al. 2022 approach 3 before rounding, as given in Besiroglu et al. 2024's "
        "epoch-research/analyzing-chinchilla data_analysis.ipynb (true_params)"
    ),
)

#: Besiroglu et al. (2024), the Epoch AI refit of approach 3.
BESIROGLU_2024 = ChinchillaLaw(
    E=1.82,
    A=482.01,
    B=2085.43,
    alpha=0.3478,
    beta=0.3658,
    source="Besiroglu et al. 2024, arXiv:2404.10102, refit of Hoffmann et al.'s approach 3",
)


@dataclass(frozen=True)
class TrainedModel:
    """A published training run: parameters, tokens and training compute (FLOPs)."""

    name: str
    n_params: float
    n_tokens: float
    flops: float
    source: str

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params


#: Chinchilla itself: 70B parameters on 1.4T tokens, the same compute as Gopher
#: (5.76e23 FLOPs) -- Hoffmann et al. 2022, section 4.1. (6ND gives 5.9e23.)
CHINCHILLA_MODEL = TrainedModel(
    name="Chinchilla",
    n_params=70e9,
    n_tokens=1.4e12,
    flops=5.76e23,
    source="Hoffmann et al. 2022, arXiv:2203.15556, section 4.1",
)
