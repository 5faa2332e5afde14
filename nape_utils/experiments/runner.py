"""Running notebooks with papermill, with parameters checked before anything executes.

Papermill only warns about a parameter the notebook does not declare, so a typo silently runs the
defaults. :func:`check_parameters` refuses unknown names (suggesting the closest) and values whose type
does not match the declared default, listing the valid parameters in the message.
"""
from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

#: the parameter a notebook declares to receive its run directory
RESULTS_PARAMETER = "results_dir"


def notebook_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """name → {default, type, help} of the notebook's cell tagged ``parameters``."""
    import papermill

    path = Path(notebook)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}; list them with `ls notebooks/`")
    found = papermill.inspect_notebook(str(path))
    if not found:
        raise ValueError(f"{path.name} has no cell tagged `parameters`, so it takes no parameters")
    return {name: {"default": info["default"], "type": info["inferred_type_name"], "help": info["help"]}
            for name, info in found.items()}


def _describe(params: dict[str, dict[str, Any]]) -> str:
    return "\n".join(f"  {name}: {p['type']} = {p['default']}" + (f"  # {p['help']}" if p["help"] else "")
                     for name, p in params.items())


def _type_ok(declared: str, value: Any) -> bool:
    declared = declared.replace(" ", "").lower()
    if declared in ("none", ""):
        return True
    checks = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list),
        "dict": lambda v: isinstance(v, dict),
    }
    options = [t for t in declared.replace("optional[", "").rstrip("]").split("|")]
    if "none" in options and value is None:
        return True
    known = [checks[t.split("[")[0]] for t in options if t.split("[")[0] in checks]
    return not known or any(check(value) for check in known)


def check_parameters(notebook: str | Path, given: dict[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against the notebook's declared parameters; returns them unchanged."""
    declared = notebook_parameters(notebook)
    for name, value in given.items():
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{Path(notebook).name} has no parameter {name!r}.{hint} Its parameters are:\n"
                             + _describe(declared))
        if not _type_ok(declared[name]["type"], value):
            raise ValueError(f"parameter {name!r} of {Path(notebook).name} must be {declared[name]['type']}, "
                             f"got {value!r} ({type(value).__name__}). Its parameters are:\n" + _describe(declared))
    return given


def parse_value(text: str) -> Any:
    """A command-line value read as YAML: ``3`` → int, ``0.5`` → float, ``[a, b]`` → list, else str."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def run_id(params: dict[str, Any]) -> str:
    """Time stamp plus a short hash of the parameters: sortable and distinct per parameter set."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{digest}"


def run_notebook(notebook: str | Path, params: dict[str, Any] | None = None, *, results_root: str | Path = "results",
                 run_name: str | None = None, progress: bool = False) -> Path:
    """Execute ``notebook`` with ``params`` into ``results_root/<notebook>/<run_id>/``; returns that
    directory, holding ``params.yaml`` and the executed notebook. The notebook runs in its own folder."""
    import papermill

    notebook = Path(notebook).resolve()
    params = check_parameters(notebook, dict(params or {}))
    run_dir = (Path(results_root) / notebook.stem / (run_name or run_id(params))).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if RESULTS_PARAMETER in notebook_parameters(notebook) and RESULTS_PARAMETER not in params:
        params[RESULTS_PARAMETER] = str(run_dir)
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=True))
    papermill.execute_notebook(str(notebook), str(run_dir / notebook.name), parameters=params,
                               cwd=str(notebook.parent), progress_bar=progress, kernel_name="python3")
    return run_dir
