"""After the zoo has grown: export it, then bring everything that reads it up to date.

Steps, in order (``--steps`` picks some):

- ``export``: the store → ``zoo.nc`` (the complete architectures of every family);
- ``proxies``: the 13 zero-cost proxies of every exported architecture into the shipped proxy cache
  (notebooks 04-06 and the ``zoo-nb101`` card read them from there; about 1-20 s a network);
- ``graf``: the generic GRAF features of every exported architecture into the shipped GRAF cache;
- ``card``: re-measure the shipped ``zoo-nb101`` on the grown families (its NB-101 labels must be the
  ones it was fitted on; refit with ``python -m nape_utils.experiments.pretrained zoo-nb101`` if not);
- ``notebooks``: re-run, in place, the notebooks that read the zoo.

Every step can be interrupted and run again: the caches keep each finished chunk, and the export and
card are rewritten whole. The notebooks' prose quotes their numbers, so read them again afterwards.

Usage: ``python -m nape_utils.experiments.zoo_refresh [--steps proxies,graf] [--store …] [--out …]``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Iterable

from ..zoo.build import DEFAULT_STORE
from ..zoo.export import DEFAULT_NETCDF

STEPS = ("export", "proxies", "graf", "card", "notebooks")
PROXY_CACHE = Path("results/comparison/proxy_cache.csv")
GRAF_CACHE = Path("results/comparison/graf_cache")
#: notebooks whose outputs come from the zoo's labels
ZOO_NOTEBOOKS = ("02_architecture_zoo", "04_fuzzy_ensemble_transfer", "05_zero_cost_proxies_and_graf",
                 "06_random_weight_evaluation")


def _checked_steps(steps: Iterable[str]) -> list[str]:
    steps = list(steps)
    unknown = [step for step in steps if step not in STEPS]
    if unknown or not steps:
        raise ValueError(f"unknown step(s) {unknown or steps}: choose from {', '.join(STEPS)}")
    return [step for step in STEPS if step in steps]  # always in dependency order


def refresh(store: str | Path = DEFAULT_STORE, out: str | Path = DEFAULT_NETCDF, *, steps: Iterable[str] = STEPS,
            proxy_cache: str | Path = PROXY_CACHE, graf_cache: str | Path = GRAF_CACHE,
            notebooks: str | Path = "notebooks", shot_seeds=(0, 1, 2), min_archs: int = 15,
            progress: bool = True) -> None:
    """Run ``steps`` (see the module docstring) for the zoo in ``store``, exported to ``out``."""
    from tqdm.auto import tqdm

    from ..zoo.export import export
    from . import comparison as cmp

    steps = _checked_steps(steps)
    if "export" not in steps and not Path(out).is_file():
        raise FileNotFoundError(f"no export at {out}: include the export step, or pass --out with an existing zoo.nc")
    for step in steps:
        start = time.perf_counter()
        if step == "export":
            export(store, out)
        elif step == "proxies":
            with tqdm(desc="proxies (networks not cached)", disable=not progress) as bar:
                def advance(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                cmp.proxy_table(cmp.zoo_table(out)[["space", "spec"]], proxy_cache, progress=advance)
        elif step == "graf":  # spaces with the authors' feature set read them off the spec: nothing to cache
            families = [(space, cells) for space, cells in cmp.zoo_table(out).groupby("space")
                        if space not in cmp.GRAF_SPACES]
            for space, cells in tqdm(families, desc="GRAF", disable=not progress):
                cmp.cached_graf_features(space, cells["spec"].tolist(), graf_cache)
        elif step == "card":
            from .pretrained import measure_zoo_nb101

            measure_zoo_nb101(out, few_shot_seeds=tuple(shot_seeds), min_archs=min_archs, proxy_cache=proxy_cache,
                              progress=progress)
        else:
            from .reproduce import run_notebooks

            run_notebooks([Path(notebooks) / f"{name}.ipynb" for name in ZOO_NOTEBOOKS])
        print(f"{step}: done in {time.perf_counter() - start:.0f} s", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(DEFAULT_STORE), help="the zoo store (SQLite)")
    parser.add_argument("--out", default=str(DEFAULT_NETCDF), help="its export (NetCDF)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, from {','.join(STEPS)}")
    args = parser.parse_args(argv)
    try:
        refresh(args.store, args.out, steps=args.steps.split(","))
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
