"""Data loading and validation."""

from bayesvae.data.datasets import (
    ImageData,
    load_array,
    load_binarized_mnist,
    load_digits,
    load_mnist,
)
from bayesvae.data.loaders import DynamicBinarize, TensorBatchDataset, TensorBatches, make_loader
from bayesvae.data.tabular import aggregate_outcomes, read_features, read_table
from bayesvae.data.text import (
    Corpus,
    load_20news_prodlda,
    load_bow,
    read_documents,
    vectorize,
)

__all__ = [
    "ImageData",
    "load_array",
    "load_binarized_mnist",
    "load_digits",
    "load_mnist",
    "DynamicBinarize",
    "TensorBatchDataset",
    "TensorBatches",
    "make_loader",
    "aggregate_outcomes",
    "read_features",
    "Corpus",
    "load_20news_prodlda",
    "load_bow",
    "read_documents",
    "vectorize",
    "read_table",
]
