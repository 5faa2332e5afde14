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

Switches added after checking the authors' code (each measured in results/gennape_study; checkpoints
written before a switch existed load with the old behaviour):

* ``flops_unit``: the divisor is log10(F + 1) + 1 with F the FLOPs as nape counts them (``"raw"``,
  2 per multiply-add) or in GFLOPs (``"giga"``, F / 1e9, as AIO-P's data manager converts them).
* ``op_repr``: ``"reference"`` reads NB-201's ``none`` as identity × 0 and its average pool as pool +
  batch norm, as the authors' networks build them (``graphs.reference_ops``); ``"atomic"`` is nape's CG.
* ``center_refit`` / ``center_refit_final``: the fuzzy C-means centres are fitted once to the
  embeddings before training (GENNAPE's figure); these refit them, warm-started, every k epochs of
  the end-to-end training and/or once after it, so the memberships follow the encoder as it moves.
* ``encoder_lr_scale`` / ``freeze_encoder_epochs``: a gentler end-to-end schedule for a pretrained
  encoder (its learning rate scaled, or the encoder frozen for the first epochs).

The model runs on ``device`` (``"auto"``: CUDA when available, else the CPU); results agree across
devices up to floating-point rounding.
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
from ..encoders.features import reference_ops_batch
from ..graphs import ComputationGraph
from ..graphs.reference_ops import OP_REPRESENTATIONS
from .fuzzy import fuzzy_cmeans, membership_entropy, memberships

CHECKPOINT_FORMAT = "nape-gennape/1"
#: units of the FLOPs inside the target transform's log10(F + 1) + 1
FLOPS_UNITS = {"raw": 1.0, "giga": 1e9}
#: what a checkpoint written before a setting existed meant by it (GENNAPE.load)
LEGACY_SETTINGS = {"channels": "linear", "op_init": "normal", "dev_fraction": 0.0, "flops_unit": "raw",
                   "op_repr": "atomic", "center_refit": 0, "center_refit_final": False, "encoder_lr_scale": 1.0,
                   "freeze_encoder_epochs": 0}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): CUDA when available, else the CPU; anything else as torch reads it."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    flops_unit: str = "raw"     # FLOPS_UNITS: FLOPs as counted ("raw") or in GFLOPs ("giga", AIO-P's) in the divisor
    op_repr: str = "atomic"     # OP_REPRESENTATIONS: nape's atomic none/avgpool, or the reference's compositions
    center_refit: int = 0       # refit the fuzzy centres every k epochs while fitting; 0: fitted once, before training
    center_refit_final: bool = False  # refit the centres once more after training (to the kept epoch's embeddings)
    encoder_lr_scale: float = 1.0     # encoder learning rate = lr × this while fitting (heads keep lr)
    freeze_encoder_epochs: int = 0    # the encoder is frozen for the first epochs of fit
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

    def prepare(self, batch):
        """The batch as the encoder reads it: ops rewritten by ``op_repr``."""
        return reference_ops_batch(batch) if self.cfg.op_repr == "reference" else batch

    def encode(self, batch) -> torch.Tensor:
        return self.encoder(self.prepare(batch))

    def weights(self, z: torch.Tensor) -> torch.Tensor:
        u = memberships(z, self.centers, self.cfg.fuzzifier)
        if self.cfg.hard_clusters:
            u = nn.functional.one_hot(u.argmax(1), len(self.heads)).float()
        return u

    def forward(self, batch) -> torch.Tensor:
        z = self.encode(batch)
        outputs = torch.cat([head(z) for head in self.heads], dim=1)  # [N, C]
        return (self.weights(z) * outputs).sum(1)


def _check_config(cfg: GENNAPEConfig) -> None:
    if cfg.flops_unit not in FLOPS_UNITS:
        raise ValueError(f"unknown flops_unit {cfg.flops_unit!r}; choose one of {', '.join(FLOPS_UNITS)}")
    if cfg.op_repr not in OP_REPRESENTATIONS:
        raise ValueError(f"unknown op_repr {cfg.op_repr!r}; choose one of {', '.join(OP_REPRESENTATIONS)}")
    if cfg.center_refit < 0 or cfg.freeze_encoder_epochs < 0 or cfg.encoder_lr_scale < 0:
        raise ValueError("center_refit, freeze_encoder_epochs and encoder_lr_scale must be ≥ 0")


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
    ``save``/``load``. Inputs are ComputationGraphs (see ``nape_utils.graphs.graph_of``) or featurized
    graphs. ``device``: where the model trains and predicts ("auto": CUDA when available)."""

    def __init__(self, config: GENNAPEConfig | None = None, *, device: str | torch.device | None = "auto", **overrides):
        self.config = config or GENNAPEConfig()
        for key, value in overrides.items():
            if not hasattr(self.config, key):
                raise ValueError(f"unknown GENNAPE setting {key!r}; settings: {', '.join(asdict(self.config))}")
            setattr(self.config, key, value)
        _check_config(self.config)
        torch.manual_seed(self.config.seed)
        self.model = _Model(self.config)
        self.device = torch.device("cpu")
        self.target_stats = (0.0, 1.0)
        self.pretrain_history: list[float] = []
        self.dev_history: list[float] = []  # dev MAPE per fit epoch when config.dev_fraction > 0
        self.cluster_history: list[dict] = []  # per (re)fit of the centres: epoch and membership entropy
        self.fitted = False
        self.to(device)

    def to(self, device: str | torch.device | None = "auto") -> "GENNAPE":
        """Move the model to ``device`` (``"auto"``: CUDA when available, else the CPU)."""
        self.device = resolve_device(device)
        self.model.to(self.device)
        return self

    def _on_device(self, batch):
        return batch if self.device.type == "cpu" else batch.to(self.device)

    # -- target transform --------------------------------------------------------------------------
    def _divisor(self, flops: np.ndarray) -> np.ndarray:
        """log10(F + 1) + 1 with F the FLOPs in ``config.flops_unit`` (ones without the FLOPs transform)."""
        flops = np.asarray(flops, dtype=float)
        if not self.config.flops_transform:
            return np.ones(len(flops))
        return np.log10(flops / FLOPS_UNITS[self.config.flops_unit] + 1) + 1

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
        self.pretrain_history = pretrain(self.model.encoder, views, config, progress, transform=self.model.prepare)
        return self

    def _embed(self, data: list, batch_size: int = 512) -> torch.Tensor:
        """Embeddings [N, dim] of featurized graphs, on the CPU."""
        self.model.eval()
        with torch.no_grad():
            return torch.cat([self.model.encode(self._on_device(collate(data[i:i + batch_size]))).cpu()
                              for i in range(0, len(data), batch_size)])

    def _fit_centers(self, data: list, epoch: int, warm: bool) -> None:
        """(Re)fit the fuzzy C-means centres to the embeddings of ``data``; log the memberships' entropy."""
        z = self._embed(data)
        init = self.model.centers.detach().cpu() if warm else None
        centers = fuzzy_cmeans(z, self.config.n_clusters, self.config.fuzzifier, seed=self.config.seed, init=init)
        self.model.centers.copy_(centers.to(self.device))
        entropy = float(membership_entropy(memberships(z, centers, self.config.fuzzifier)).mean())
        self.cluster_history.append({"epoch": epoch, "entropy": round(entropy, 4)})

    def _dev_mape(self, batch, y: np.ndarray) -> float:
        """Mean absolute percentage error on a collated batch of held-out architectures, in accuracy units."""
        self.model.eval()
        with torch.no_grad():
            pred = self.model(self._on_device(batch)).cpu().numpy().astype(float)
        pred = self._inverse(pred, batch.flops.cpu().numpy().astype(float))
        return float(np.mean(np.abs(pred - y) / np.maximum(np.abs(y), 1e-8)))

    def _train(self, data: list, target: np.ndarray, epochs: int, batch_size: int, lr: float, clip: float | None,
               progress: bool, weight_decay: float = 0.0, dev: tuple[list, np.ndarray] | None = None,
               schedule: bool = False) -> None:
        """Adam on MSE (plus the optional rank loss); with ``dev`` = (collated graphs, accuracies), the weights
        of the epoch with the lowest dev MAPE are kept, as the reference's demo does. ``schedule`` (fit only)
        applies the config's encoder learning-rate scale, encoder freezing and centre refits."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        best = (np.inf, None)
        encoder = list(self.model.encoder.parameters())
        heads = [p for name, p in self.model.named_parameters() if not name.startswith("encoder.")]
        scale = cfg.encoder_lr_scale if schedule else 1.0
        opt = torch.optim.Adam([{"params": encoder, "lr": lr * scale}, {"params": heads, "lr": lr}],
                               lr=lr, weight_decay=weight_decay)
        target_t = torch.tensor(target, dtype=torch.float32, device=self.device)
        self.model.train()
        for epoch in tqdm(range(epochs), desc="gennape", disable=not progress):
            if schedule and cfg.center_refit and epoch and epoch % cfg.center_refit == 0:
                self._fit_centers(data, epoch, warm=True)
                self.model.train()
            frozen = schedule and epoch < cfg.freeze_encoder_epochs
            for param in encoder:
                param.requires_grad_(not frozen)
            for idx in np.array_split(rng.permutation(len(data)), max(1, len(data) // batch_size)):
                pred = self.model(self._on_device(collate([data[i] for i in idx])))
                truth = target_t[torch.from_numpy(idx).to(self.device)]
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
        for param in encoder:
            param.requires_grad_(True)
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
        self.cluster_history = []
        self._fit_centers(data, 0, warm=False)
        target = self._transform(y, data, refit=True)
        self._train(data, target, self.config.epochs, self.config.batch_size, self.config.lr, None, progress,
                    self.config.weight_decay, dev, schedule=True)
        if self.config.center_refit_final:
            self._fit_centers(data, self.config.epochs, warm=True)
        else:  # the memberships the trained model ends with, on the same data
            z = self._embed(data)
            entropy = membership_entropy(memberships(z, self.model.centers.cpu(), self.config.fuzzifier)).mean()
            self.cluster_history.append({"epoch": self.config.epochs, "entropy": round(float(entropy), 4), "refit": False})
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
                  min_samples: int = 5, restandardise: bool = False, progress: bool = True) -> "GENNAPE":
        """GENNAPE's k-shot fine-tuning: all parameters, Adam, gradient clipping. The target keeps the
        training set's mean and std; ``restandardise=True`` re-standardises it on the fine-tuning samples,
        as the reference's script does. Keeping them measured slightly better on NB-201 (50 shots, 3 of 4
        comparisons, +0.012 Spearman on average; results/gennape_study, round 2 and 3)."""
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
                outputs.append(self.model(self._on_device(batch)).cpu())
                flops.append(batch.flops)
        return self._inverse(torch.cat(outputs).numpy().astype(float), torch.cat(flops).numpy().astype(float))

    def embed(self, graphs) -> np.ndarray:
        return self._embed(_as_data(graphs)).numpy()

    def cluster_weights(self, graphs) -> np.ndarray:
        """[N, C] memberships used to weight the heads."""
        z = self._embed(_as_data(graphs)).to(self.device)
        with torch.no_grad():
            return self.model.weights(z).cpu().numpy()

    def membership_entropy(self, graphs) -> float:
        """Mean entropy (nats) of the fuzzy memberships of ``graphs``: ln C when every graph belongs to
        every cluster equally, 0 when each belongs to one."""
        z = self._embed(_as_data(graphs))
        with torch.no_grad():
            u = memberships(z, self.model.centers.cpu(), self.config.fuzzifier)
        return float(membership_entropy(u).mean())

    def _require_fitted(self):
        if not self.fitted:
            raise ValueError("this GENNAPE model is not fitted yet: call fit(graphs, accuracies) or load a checkpoint")

    def copy(self) -> "GENNAPE":
        return copy.deepcopy(self)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save({"format": CHECKPOINT_FORMAT, "config": asdict(self.config), "state": state,
                    "target_stats": self.target_stats, "fitted": self.fitted,
                    "pretrain_history": self.pretrain_history, "cluster_history": self.cluster_history}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = "auto") -> "GENNAPE":
        """A saved model, on ``device``. Settings a checkpoint predates take :data:`LEGACY_SETTINGS`."""
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
        config = {**LEGACY_SETTINGS, **blob["config"]}  # e.g. a checkpoint without flops_unit divided raw FLOPs
        unknown = set(config) - set(asdict(GENNAPEConfig()))
        if unknown:
            raise ValueError(f"{path} has settings this version of nape does not know ({', '.join(sorted(unknown))}); "
                             "it was written by a newer, incompatible version")
        model = cls(GENNAPEConfig(**config), device="cpu")
        try:
            model.model.load_state_dict(blob["state"])
        except RuntimeError as err:
            raise ValueError(f"{path} does not fit its own configuration: {err}") from err
        model.target_stats = tuple(blob["target_stats"])
        model.fitted = bool(blob["fitted"])
        model.pretrain_history = list(blob.get("pretrain_history", []))
        model.cluster_history = list(blob.get("cluster_history", []))
        return model.to(device)

    def describe(self) -> str:
        return json.dumps(asdict(self.config))
