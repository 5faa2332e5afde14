"""Fuzzy C-means (Bezdek): soft cluster memberships of embeddings.

Memberships of x to centres v_1…v_C with fuzzifier m > 1:
u_c(x) = 1 / Σ_k (‖x − v_c‖ / ‖x − v_k‖)^(2/(m−1)); centres v_c = Σ_x u_c(x)^m x / Σ_x u_c(x)^m.
Written in torch rather than taken from scikit-fuzzy: GENNAPE's ensemble evaluates memberships
*inside* the model, differentiably, while fine-tuning moves the encoder; scikit-fuzzy is NumPy-only.
"""
from __future__ import annotations

import torch


def memberships(z: torch.Tensor, centers: torch.Tensor, m: float = 2.0, eps: float = 1e-9) -> torch.Tensor:
    """[N, C] memberships (rows sum to 1) of embeddings ``z`` [N, D] to ``centers`` [C, D]."""
    dist = torch.cdist(z, centers).clamp_min(eps)
    power = 2.0 / (m - 1.0)
    ratio = (dist[:, :, None] / dist[:, None, :]) ** power  # [N, C, C]: (d_c / d_k)^(2/(m-1))
    return 1.0 / ratio.sum(dim=2)


def fuzzy_cmeans(z: torch.Tensor, n_clusters: int, m: float = 2.0, iters: int = 150, tol: float = 1e-6,
                 seed: int = 0, init: torch.Tensor | None = None) -> torch.Tensor:
    """Centres [C, D] fitted to ``z`` [N, D] by alternating membership and centre updates, starting
    from ``init`` [C, D] when given (a refit) or else from C points of ``z`` drawn with ``seed``.
    Computed on ``z``'s device in double precision; returned as float32."""
    if m <= 1:
        raise ValueError(f"the fuzzifier m must be > 1, got {m}")
    if not 1 <= n_clusters <= len(z):
        raise ValueError(f"n_clusters must be between 1 and the number of points ({len(z)}), got {n_clusters}")
    z = z.detach().double()
    if init is not None:
        if tuple(init.shape) != (n_clusters, z.shape[1]):
            raise ValueError(f"init must have shape ({n_clusters}, {z.shape[1]}), got {tuple(init.shape)}")
        centers = init.detach().to(z).clone()
    else:
        gen = torch.Generator().manual_seed(seed)
        centers = z[torch.randperm(len(z), generator=gen)[:n_clusters].to(z.device)].clone()
    for _ in range(iters):
        weights = memberships(z, centers, m) ** m  # [N, C]
        new = (weights.T @ z) / weights.sum(0)[:, None]
        shift = (new - centers).abs().max()
        centers = new
        if shift < tol:
            break
    return centers.float()


def membership_entropy(u: torch.Tensor) -> torch.Tensor:
    """Entropy −Σ_c u_c ln u_c of each row of memberships [N, C] (nats): ln C for uniform memberships,
    0 for hard ones."""
    return -(u * torch.log(u.clamp_min(1e-12))).sum(1)
