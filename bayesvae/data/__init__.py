"""Data loading and validation. Names load on first use (see :mod:`bayesvae._lazy`), so the
torch-free loaders (tables, experiments) do not import torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bayesvae._lazy import lazy_exports

_EXPORTS = {
    **{
        name: f"bayesvae.data.datasets:{name}"
        for name in (
            "ImageData",
            "keep_labels",
            "load_array",
            "load_binarized_mnist",
            "load_digits",
            "load_mnist",
        )
    },
    **{
        name: f"bayesvae.data.loaders:{name}"
        for name in ("DynamicBinarize", "TensorBatchDataset", "TensorBatches", "make_loader")
    },
    **{
        name: f"bayesvae.data.tabular:{name}"
        for name in ("aggregate_outcomes", "read_features", "read_table")
    },
    **{
        name: f"bayesvae.data.text:{name}"
        for name in ("Corpus", "load_20news_prodlda", "load_bow", "read_documents", "vectorize")
    },
}
__all__ = [
    "ImageData",
    "keep_labels",
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
    "read_table",
    "Corpus",
    "load_20news_prodlda",
    "load_bow",
    "read_documents",
    "vectorize",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from bayesvae.data.datasets import (
        ImageData,
        keep_labels,
        load_array,
        load_binarized_mnist,
        load_digits,
        load_mnist,
    )
    from bayesvae.data.loaders import (
        DynamicBinarize,
        TensorBatchDataset,
        TensorBatches,
        make_loader,
    )
    from bayesvae.data.tabular import aggregate_outcomes, read_features, read_table
    from bayesvae.data.text import Corpus, load_20news_prodlda, load_bow, read_documents, vectorize
