"""GENNAPE (Mills et al., AAAI 2023): CG encoder → fuzzy C-means memberships → weighted MLP heads.

prediction(x) = Σ_c u_c(z) · head_c(z), z = encoder(CG(x)), u the fuzzy memberships of z to centres
fitted on the training embeddings. Targets are transformed as GENNAPE's group does,
y' = accuracy / (log10(FLOPs + 1) + 1), then standardised; predictions are transformed back.
Ablation switches: ``n_clusters=1`` (single head), ``hard_clusters`` (arg-max membership),
``flops_transform=False``, and an encoder without contrastive pretraining (skip :meth:`pretrain`).
Op-type embeddings start at zero (``op_init``): ops absent from training (NB-201's avgpool, identity and
zero for a model fitted on NB-101) then carry no op-type signal instead of a random vector; on the NB-201
development slice this lifted zero-shot Spearman from 0.65 to 0.72 over 3 seeds (results/gennape_study).
``fit`` holds out ``dev_fraction`` of its labels and keeps the epoch with the lowest dev MAPE, as the
reference's demo does (10 %).
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..encoders import GraphEncoder, batch_graphs, collate, featurize
from ..encoders.contrastive import ContrastiveConfig, pretrain
from ..graphs import ComputationGraph
from .fuzzy import fuzzy_cmeans, memberships

CHECKPOINT_FORMAT = "nape-gennape/1"


@dataclass
class GENNAPEConfig:
    dim: int = 32
    layers: int = 6
    gnn: str = "graphconv"
    n_clusters: int = 4
    fuzzifier: float = 2.0
    hard_clusters: bool = False
    head_hidden: int = 32
    flops_transform: bool = True
    rank_loss: float = 0.0      # weight of a pairwise logistic ranking loss added to the MSE
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0   # Adam weight decay while fitting (fine-tuning keeps GENNAPE's 0)
    dropout: float = 0.0        # encoder dropout after each GNN layer
    channels: str = "linear"    # how the encoder reads channel counts (encoders.gnn.CHANNEL_MODES)
    op_init: str = "zero"       # op-embedding init: "zero" keeps ops unseen in training neutral; "normal" N(0, 1)
    dev_fraction: float = 0.1   # held out of fit's data to keep the epoch with the lowest dev MAPE (the reference's); 0: none
    seed: int = 0
    extra: dict = field(default_factory=dict)


class _Model(nn.Module):
    def __init__(self, cfg: GENNAPEConfig):
        super().__init__()
        self.encoder = GraphEncoder(cfg.dim, cfg.layers, cfg.gnn, cfg.dropout, cfg.channels, cfg.op_init)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(cfg.dim, cfg.head_hidden), nn.ReLU(), nn.Linear(cfg.head_hidden, 1))
            for _ in range(cfg.n_clusters))
        self.register_buffer("centers", torch.zeros(cfg.n_clusters, cfg.dim))
        self.cfg = cfg

    def weights(self, z: torch.Tensor) -> torch.Tensor:
        u = memberships(z, self.centers, self.cfg.fuzzifier)
        if self.cfg.hard_clusters:
            u = nn.functional.one_hot(u.argmax(1), len(self.heads)).float()
        return u

    def forward(self, batch) -> torch.Tensor:
        z = self.encoder(batch)
        outputs = torch.cat([head(z) for head in self.heads], dim=1)  # [N, C]
        return (self.weights(z) * outputs).sum(1)


def _as_items(graphs) -> list:
    items = list(graphs)
    if not items:
        raise ValueError("no architectures given")
    return items


def _as_data(graphs) -> list:
    return [featurize(g) if isinstance(g, ComputationGraph) else g for g in _as_items(graphs)]


def _has_oov(graph) -> bool:
    ops = graph.ops if isinstance(graph, ComputationGraph) else graph.op.numpy()
    return bool((ops == 0).any())


def _batch(items: list):
    """One batch of ComputationGraphs (featurized together) or of featurized graphs."""
    if all(isinstance(g, ComputationGraph) for g in items):
        return batch_graphs(items)
    return collate([featurize(g) if isinstance(g, ComputationGraph) else g for g in items])


def _labels(y, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=float).ravel()
    if len(y) != n:
        raise ValueError(f"{n} architectures but {len(y)} labels")
    if not np.isfinite(y).all():
        raise ValueError("labels contain NaN or inf; drop those architectures first")
    return y


class GENNAPE:
    """The estimator: ``pretrain`` (contrastive, optional), ``fit``, ``predict``, ``fine_tune``,
    ``save``/``load``. Inputs are ComputationGraphs (see ``nape_utils.graphs.graph_of``)."""

    def __init__(self, config: GENNAPEConfig | None = None, **overrides):
        self.config = config or GENNAPEConfig()
        for key, value in overrides.items():
            if not hasattr(self.config, key):
                raise ValueError(f"unknown GENNAPE setting {key!r}; settings: {', '.join(asdict(self.config))}")
            setattr(self.config, key, value)
        torch.manual_seed(self.config.seed)
        self.model = _Model(self.config)
        self.target_stats = (0.0, 1.0)
        self.pretrain_history: list[float] = []
        self.dev_history: list[float] = []  # dev MAPE per fit epoch when config.dev_fraction > 0
        self.fitted = False

    # -- target transform --------------------------------------------------------------------------
    def _divisor(self, flops: np.ndarray) -> np.ndarray:
        return np.log10(flops + 1) + 1 if self.config.flops_transform else np.ones(len(flops))

    def _transform(self, y: np.ndarray, data: list, refit: bool) -> np.ndarray:
        t = y / self._divisor(np.array([d.flops.item() for d in data]))
        if refit:
            self.target_stats = (float(t.mean()), float(t.std()) or 1.0)
        mean, std = self.target_stats
        return (t - mean) / std

    def _inverse(self, t: np.ndarray, flops: np.ndarray) -> np.ndarray:
        mean, std = self.target_stats
        return (t * std + mean) * self._divisor(flops)

    # -- training ----------------------------------------------------------------------------------
    def pretrain(self, views: list[list], config: ContrastiveConfig = ContrastiveConfig(), progress: bool = True):
        """Contrastive pretraining of the encoder on unlabelled views (see encoders.contrastive)."""
        self.pretrain_history = pretrain(self.model.encoder, views, config, progress)
        return self

    def _embed(self, data: list, batch_size: int = 512) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad():
            return torch.cat([self.model.encoder(collate(data[i:i + batch_size])) for i in range(0, len(data), batch_size)])

    def _dev_mape(self, batch, y: np.ndarray) -> float:
        """Mean absolute percentage error on a collated batch of held-out architectures, in accuracy units."""
        self.model.eval()
        with torch.no_grad():
            pred = self.model(batch).numpy().astype(float)
        pred = self._inverse(pred, batch.flops.numpy().astype(float))
        return float(np.mean(np.abs(pred - y) / np.maximum(np.abs(y), 1e-8)))

    def _train(self, data: list, target: np.ndarray, epochs: int, batch_size: int, lr: float, clip: float | None,
               progress: bool, weight_decay: float = 0.0, dev: tuple[list, np.ndarray] | None = None) -> None:
        """Adam on MSE (plus the optional rank loss); with ``dev`` = (collated graphs, accuracies), the weights
        of the epoch with the lowest dev MAPE are kept, as the reference's demo does."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        best = (np.inf, None)
        opt = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        target_t = torch.tensor(target, dtype=torch.float32)
        self.model.train()
        for _ in tqdm(range(epochs), desc="gennape", disable=not progress):
            for idx in np.array_split(rng.permutation(len(data)), max(1, len(data) // batch_size)):
                pred = self.model(collate([data[i] for i in idx]))
                truth = target_t[idx]
                loss = nn.functional.mse_loss(pred, truth)
                if cfg.rank_loss > 0 and len(idx) > 1:
                    diff_pred = pred[:, None] - pred[None, :]
                    sign = torch.sign(truth[:, None] - truth[None, :])
                    loss = loss + cfg.rank_loss * nn.functional.softplus(-sign * diff_pred)[sign != 0].mean()
                opt.zero_grad()
                loss.backward()
                if clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                opt.step()
            if dev is not None:
                score = self._dev_mape(*dev)
                self.dev_history.append(score)
                if score < best[0]:
                    best = (score, copy.deepcopy(self.model.state_dict()))
                self.model.train()
        if best[1] is not None:
            self.model.load_state_dict(best[1])
        self.model.eval()

    def fit(self, graphs, y, progress: bool = True) -> "GENNAPE":
        """Fit clusters on the embeddings of ``graphs`` and train encoder and heads on accuracies ``y``."""
        data = _as_data(graphs)
        y = _labels(y, len(data))
        data, y, dev = self._split_dev(data, y)
        self.dev_history = []
        if len(data) < self.config.n_clusters:
            held = f" after holding out {len(dev[1])} for the dev split (dev_fraction)" if dev else ""
            raise ValueError(f"{len(data)} architectures{held} cannot fill {self.config.n_clusters} clusters")
        self.model.centers.copy_(fuzzy_cmeans(self._embed(data), self.config.n_clusters, self.config.fuzzifier,
                                              seed=self.config.seed))
        target = self._transform(y, data, refit=True)
        self._train(data, target, self.config.epochs, self.config.batch_size, self.config.lr, None, progress,
                    self.config.weight_decay, dev)
        self.fitted = True
        return self

    def _split_dev(self, data: list, y: np.ndarray):
        """(train data, train labels, dev set or None) by ``config.dev_fraction``, drawn with the seed."""
        fraction = self.config.dev_fraction
        if not 0 <= fraction < 1:
            raise ValueError(f"dev_fraction must be in [0, 1), got {fraction}")
        n_dev = int(round(fraction * len(data)))
        if n_dev == 0:
            return data, y, None
        order = np.random.default_rng(self.config.seed).permutation(len(data))
        dev, train = order[:n_dev], order[n_dev:]
        return [data[i] for i in train], y[train], (collate([data[i] for i in dev]), y[dev])  # collated once

    def fine_tune(self, graphs, y, *, epochs: int = 100, lr: float = 1e-4, batch_size: int = 1, clip: float = 5.0,
                  min_samples: int = 5, restandardise: bool = True, progress: bool = True) -> "GENNAPE":
        """GENNAPE's k-shot fine-tuning: all parameters, Adam, gradient clipping; the target is
        re-standardised on the fine-tuning samples (``restandardise=False`` keeps the training
        set's mean and std)."""
        self._require_fitted()
        data = _as_data(graphs)
        y = _labels(y, len(data))
        if len(data) < min_samples:
            raise ValueError(f"fine-tuning needs at least {min_samples} labelled architectures, got {len(data)}")
        target = self._transform(y, data, refit=restandardise)
        self._train(data, target, epochs, batch_size, lr, clip, progress)
        return self

    def predict(self, graphs, batch_size: int = 128) -> np.ndarray:
        """Predicted accuracies (in the units of the training labels) of ComputationGraphs or
        featurized graphs. ComputationGraphs are featurized a batch at a time, never one by one;
        batches of ~100 graphs keep each layer's activations in cache."""
        self._require_fitted()
        items = _as_items(graphs)
        unknown = [i for i, g in enumerate(items) if _has_oov(g)]
        if unknown:
            raise ValueError(f"{len(unknown)} architecture(s) (first: #{unknown[0]}) have ops outside nape's vocabulary "
                             "('oov' nodes), which this model cannot represent; see the warning from from_module")
        self.model.eval()
        outputs, flops = [], []
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                batch = _batch(items[start:start + batch_size])
                outputs.append(self.model(batch))
                flops.append(batch.flops)
        return self._inverse(torch.cat(outputs).numpy().astype(float), torch.cat(flops).numpy().astype(float))

    def embed(self, graphs) -> np.ndarray:
        return self._embed(_as_data(graphs)).numpy()

    def cluster_weights(self, graphs) -> np.ndarray:
        """[N, C] memberships used to weight the heads."""
        z = self._embed(_as_data(graphs))
        with torch.no_grad():
            return self.model.weights(z).numpy()

    def _require_fitted(self):
        if not self.fitted:
            raise ValueError("this GENNAPE model is not fitted yet: call fit(graphs, accuracies) or load a checkpoint")

    def copy(self) -> "GENNAPE":
        return copy.deepcopy(self)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": CHECKPOINT_FORMAT, "config": asdict(self.config), "state": self.model.state_dict(),
                    "target_stats": self.target_stats, "fitted": self.fitted,
                    "pretrain_history": self.pretrain_history}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "GENNAPE":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no GENNAPE checkpoint at {path}")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is not a readable GENNAPE checkpoint ({err})") from err
        if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; it was written by something else "
                             "or by an incompatible version of nape")
        config = dict(blob["config"])
        config.setdefault("channels", "linear")  # checkpoints from before these settings read channels linearly
        config.setdefault("op_init", "normal")    # and started their op embeddings at N(0, 1)
        config.setdefault("dev_fraction", 0.0)    # and fitted on every label, keeping the last epoch
        unknown = set(config) - set(asdict(GENNAPEConfig()))
        if unknown:
            raise ValueError(f"{path} has settings this version of nape does not know ({', '.join(sorted(unknown))}); "
                             "it was written by a newer, incompatible version")
        model = cls(GENNAPEConfig(**config))
        try:
            model.model.load_state_dict(blob["state"])
        except RuntimeError as err:
            raise ValueError(f"{path} does not fit its own configuration: {err}") from err
        model.target_stats = tuple(blob["target_stats"])
        model.fitted = bool(blob["fitted"])
        model.pretrain_history = list(blob.get("pretrain_history", []))
        return model

    def describe(self) -> str:
        return json.dumps(asdict(self.config))
