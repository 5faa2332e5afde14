"""Graph encoders of computation graphs and their contrastive pretraining."""
from .features import batch_graphs, collate, featurize
from .gnn import GNN_TYPES, GraphEncoder, NodeEmbedding

__all__ = ["GNN_TYPES", "GraphEncoder", "NodeEmbedding", "batch_graphs", "collate", "featurize"]
