"""The labelled zoo: networks of every family trained by nape on its offline task."""
from .export import NothingComplete, export, label_quality, load_zoo, to_dataset
from .build import DEFAULT_STORE, ZOO_SPACES, build_zoo, plan
from .store import ZooStore
from .train import TrainConfig, train_one

__all__ = ["DEFAULT_STORE", "NothingComplete", "ZOO_SPACES", "export", "label_quality", "load_zoo", "to_dataset", "TrainConfig", "ZooStore", "build_zoo", "plan", "train_one"]
