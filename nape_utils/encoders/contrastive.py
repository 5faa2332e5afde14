"""Contrastive pretraining of the graph encoder (SimCLR's NT-Xent), with views that keep topology.

A positive pair is two *views* of one architecture; the other graphs of the batch are negatives.
``views="macro"`` (nape's first choice): views differ in the macro scale (channels, cell repeats, input
resolution — each a different CG of the same cell), plus random node-feature masking and edge
dropping, so the encoder learns to separate architectures by their cell topology — and to ignore
size, which accuracy depends on. ``views="same"``: both views are the CG at the paper size, made
different only by the masking and edge dropping (set ``feature_mask=0`` to keep every op type), so
channels, depth and resolution stay visible to the encoder.

NT-Xent for a batch of N pairs, z normalised, τ the temperature:
ℓ_i = −log exp(sim(z_i, z_i⁺)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ), averaged over all 2N views.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..graphs import graph_of
from ..spaces import get_space
from .features import collate, featurize
from .gnn import GraphEncoder

#: macro-scale variants per space: options replaced in the zoo profile, plus an input size
VIEW_SCALES: dict[str, list[dict]] = {
    "nb101": [{"stem_channels": 8, "cells_per_stack": 1, "size": 16}, {"stem_channels": 16, "cells_per_stack": 1, "size": 32},
              {"stem_channels": 32, "cells_per_stack": 2, "size": 24}, {"stem_channels": 128, "cells_per_stack": 3, "size": 32}],
    "nb201": [{"channels": 8, "cells_per_stage": 1, "size": 16}, {"channels": 16, "cells_per_stage": 2, "size": 32},
              {"channels": 16, "cells_per_stage": 5, "size": 32}],
    "nb301": [{"C": 4, "layers": 5, "size": 16}, {"C": 16, "layers": 5, "size": 32}, {"C": 32, "layers": 8, "size": 32}],
}


@dataclass(frozen=True)
class ContrastiveConfig:
    temperature: float = 0.1
    batch_size: int = 64
    epochs: int = 20
    lr: float = 1e-3
    feature_mask: float = 0.1  # chance a node's features are hidden (op → oov, resolution → 0)
    edge_drop: float = 0.1     # chance an edge is dropped
    seed: int = 0
    views: str = "macro"       # VIEW_MODES: how the views of one architecture differ (module docstring)

    def to_dict(self) -> dict:
        return asdict(self)


#: ``macro``: the CGs at every scale of :data:`VIEW_SCALES`; ``same``: the CG at the paper size alone
VIEW_MODES = ("macro", "same")


def view_graphs(space: str, spec: str, mode: str = "macro") -> list:
    """The featurized CGs of one spec that its views are drawn from: at every macro scale of
    :data:`VIEW_SCALES` (``mode="macro"``), or the paper-size CG alone (``"same"``)."""
    if mode not in VIEW_MODES:
        raise ValueError(f"unknown view mode {mode!r}; choose one of {', '.join(VIEW_MODES)}")
    sp = get_space(space)
    if mode == "same":
        return [featurize(graph_of(sp, spec, "paper"))]
    zoo = sp.profile("zoo")
    scales = VIEW_SCALES.get(sp.name)
    if scales is None:
        return [featurize(graph_of(sp, spec, p)) for p in ("zoo", "paper")]
    views = []
    for scale in scales:
        options = {k: v for k, v in scale.items() if k != "size"}
        profile = zoo.replace(name=f"view-{len(views)}", input_shape=(zoo.input_shape[0], scale["size"], scale["size"]),
                              **options)
        views.append(featurize(graph_of(sp, spec, profile)))
    return views


def augment(data, gen: torch.Generator, feature_mask: float, edge_drop: float):
    """A copy with some node features masked and some edges dropped."""
    data = data.clone()
    if feature_mask > 0:
        hide = torch.rand(data.num_nodes, generator=gen) < feature_mask
        data.op = torch.where(hide, torch.zeros_like(data.op), data.op)
        data.res = data.res * (~hide)[:, None]
    if edge_drop > 0 and data.edge_index.shape[1]:
        keep = torch.rand(data.edge_index.shape[1], generator=gen) >= edge_drop
        data.edge_index = data.edge_index[:, keep]
    return data


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return F.cross_entropy(sim, target)


def pretrain(encoder: GraphEncoder, views: list[list], config: ContrastiveConfig = ContrastiveConfig(),
             progress: bool = True, transform=None) -> list[float]:
    """Train ``encoder`` in place on ``views`` (per architecture, its list of featurized view graphs),
    on the device its parameters are on; ``transform`` (batch → batch) is applied to every collated
    batch before encoding (GENNAPE's op representation). Returns the mean loss per epoch."""
    if len(views) < 2:
        raise ValueError("contrastive pretraining needs at least 2 architectures")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = next(encoder.parameters()).device
    head = nn.Sequential(nn.Linear(encoder.dim, encoder.dim), nn.ReLU(), nn.Linear(encoder.dim, encoder.dim)).to(device)

    def encode(items: list):
        batch = collate(items).to(device)
        return head(encoder(transform(batch) if transform is not None else batch))
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=config.lr)
    history = []
    encoder.train()
    for _ in tqdm(range(config.epochs), desc="contrastive", disable=not progress):
        order = rng.permutation(len(views))
        losses = []
        for start in range(0, len(order) - 1, config.batch_size):
            batch = order[start:start + config.batch_size]
            if len(batch) < 2:
                continue
            pairs = [rng.choice(len(views[i]), size=2, replace=len(views[i]) < 2) for i in batch]
            first = encode([augment(views[i][a], gen, config.feature_mask, config.edge_drop) for i, (a, _) in zip(batch, pairs)])
            second = encode([augment(views[i][b], gen, config.feature_mask, config.edge_drop) for i, (_, b) in zip(batch, pairs)])
            loss = nt_xent(first, second, config.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    encoder.eval()
    return history
