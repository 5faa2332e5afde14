"""Graph encoders of computation graphs and their contrastive pretraining."""
from .features import collate, featurize
from .gnn import GNN_TYPES, GraphEncoder, NodeEmbedding

__all__ = ["GNN_TYPES", "GraphEncoder", "NodeEmbedding", "collate", "featurize"]
