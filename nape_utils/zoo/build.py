"""Building the zoo: which runs, run them (local processes or a dask cluster), store each as it ends."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Mapping

from tqdm.auto import tqdm

from ..checks import is_whole, whole_number
from ..spaces import get_space
from .executors import execute
from .store import ZooStore
from .train import TrainConfig, train_one

DEFAULT_STORE = Path("results/zoo/zoo.sqlite")
#: the zoo's families: the eleven GENNAPE measures, then NAS-Bench-Macro and MnasNet (Accel-NASBench), added in
#: session 12 (results/zoo/README.md); `nape zoo build` builds all of them unless told ``--spaces``. The shipped
#: ``zoo.nc`` holds the first eleven until the two new families' build is complete and exported.
ZOO_SPACES = ("nb101", "nb201", "nb301", "ofa_mbv3", "ofa_pn", "ofa_resnet", "hiaml", "inception", "two_path",
              "nago", "ghn_random", "macro", "mnasnet")


#: specs are drawn in blocks of this many (seeds sample_seed, +1000, …), whatever ``n_archs`` is, so that a
#: smaller plan is the start of a larger one and a zoo can grow in steps (60 architectures, then 200)
PLAN_BLOCK = 200


def plan(spaces: Iterable[str], n_archs: int, seeds: Iterable[int] | Mapping[str, Iterable[int]],
         sample_seed: int = 0) -> list[tuple[str, str, int]]:
    """(space, spec, seed) jobs: ``n_archs`` distinct sampled specs per space, each at every seed (one
    list for all, or a mapping space → seeds, for families that need more seeds for a reliable mean),
    interleaved across spaces so that a partly built zoo already covers every family. ``plan(…, n)`` is
    the start of ``plan(…, m)`` for n < m. Specs that name one network count once: a space whose keys
    collapse (NAS-Bench-Macro's) says which network a key builds with ``trained_key``."""
    spaces = list(spaces)
    whole_number(n_archs, "n_archs", 1, "it counts the architectures drawn from each family")
    if isinstance(seeds, Mapping):
        missing = sorted(set(spaces) - set(seeds))
        if missing:
            raise ValueError(f"no seeds given for {', '.join(missing)}")
        seeds_of = {name: _checked_seeds(seeds[name], name) for name in spaces}
    else:
        seeds = _checked_seeds(seeds, "every family")
        seeds_of = {name: seeds for name in spaces}
    per_space = []
    for name in spaces:
        space = get_space(name)
        specs: list[str] = []
        network_of = getattr(space, "trained_key", lambda spec: spec)
        networks: set[str] = set()
        rng_seed = sample_seed
        while len(specs) < n_archs:  # small spaces repeat samples; keep drawing distinct ones
            for spec in space.sample_many(PLAN_BLOCK, seed=rng_seed):
                network = network_of(spec)
                if network not in networks and len(specs) < n_archs:
                    specs.append(spec)
                    networks.add(network)
            rng_seed += 1000
            if rng_seed > sample_seed + 50_000:
                raise ValueError(f"{name} has fewer than {n_archs} distinct architectures")
        per_space.append([[(space.name, spec, seed) for seed in seeds_of[name]] for spec in specs])
    return [job for group in zip(*per_space) for arch in group for job in arch]


def _checked_seeds(seeds: Iterable[int], whose: str) -> list[int]:
    if isinstance(seeds, (str, bytes)):
        raise ValueError(f"seeds for {whose} must be integers, not the string {seeds!r}: e.g. [0, 1]")
    seeds = list(seeds)
    if not seeds or any(not is_whole(s) or s < 0 for s in seeds) \
            or len(set(seeds)) < len(seeds):
        raise ValueError(f"seeds for {whose} must be distinct non-negative integers, got {seeds!r}")
    return [int(s) for s in seeds]


def store_config(config: TrainConfig) -> dict:
    """What a store must agree on: the task and trainer settings except the budget (epochs)."""
    settings = asdict(config)
    settings.pop("epochs")
    return settings


def _run(job: tuple[str, str, int], config: TrainConfig) -> dict:
    space, spec, seed = job
    return train_one(space, spec, seed, config)


def build_zoo(jobs: list[tuple[str, str, int]], store: str | Path = DEFAULT_STORE, config: TrainConfig = TrainConfig(),
              workers: int = 1, scheduler: str | None = None, progress: bool = True) -> int:
    """Run every job not yet in the store; returns how many ran. Resumable: call again after any stop."""
    for space, spec, _ in jobs:
        get_space(space).parse(spec)  # refuse bad input before any work
    with ZooStore(store, store_config(config)) as db:
        for name in sorted({job[0] for job in jobs}):
            profile = get_space(name).profile("zoo")
            db.claim_profile(name, {"input_shape": list(profile.input_shape), "num_classes": profile.num_classes,
                                    "options": profile.options})
        done = db.done()
        todo = [job for job in jobs if (job[0], get_space(job[0]).canonical(job[1]), job[2], config.epochs) not in done]
        bar = tqdm(total=len(todo), desc="zoo", disable=not progress)
        for record in execute(_run, todo, workers=workers, scheduler=scheduler, config=config):
            db.add(record, config.epochs)
            bar.update()
        bar.close()
    return len(todo)
