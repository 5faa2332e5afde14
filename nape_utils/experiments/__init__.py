"""Running experiments: parameter checks, run directories, the papermill runner, benchmarks."""
from .runner import check_parameters, notebook_parameters, run_notebook

__all__ = ["check_parameters", "notebook_parameters", "run_notebook"]
