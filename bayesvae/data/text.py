"""Text to bags of words for topic models: read raw documents, vectorize them with scikit-learn's
``CountVectorizer`` (settings kept so new documents map onto the same vocabulary), and load the
ProdLDA paper's preprocessed 20 Newsgroups."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesvae.data.validation import load_numpy

__all__ = [
    "Corpus",
    "read_documents",
    "vectorize",
    "vectorize_with_vocabulary",
    "load_bow",
    "load_20news_prodlda",
    "drop_empty_documents",
    "PRODLDA_20NEWS_URL",
]

logger = logging.getLogger(__name__)

#: Where the paper's 20 Newsgroups data can be fetched by users who are online (the original
#: repository; see ``../shared/data/20news_prodlda/README.md`` for the files and their format).
PRODLDA_20NEWS_URL = "https://github.com/akashgit/autoencoding_vi_for_topic_models"


@dataclass
class Corpus:
    """A bag-of-words corpus.

    Attributes:
        bow: document-word counts, a ``scipy.sparse.csr_matrix`` ``(N, V)`` of int64.
        vocabulary: the V words, in column order.
        vectorizer: the CountVectorizer settings that built it (``None`` for preprocessed data).
        kept: for each row of ``bow``, its index among the input documents (empty ones dropped).
        dropped: how many input documents were dropped as empty.
    """

    bow: Any
    vocabulary: list[str]
    vectorizer: dict[str, Any] | None = None
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dropped: int = 0

    def __len__(self) -> int:
        return self.bow.shape[0]


def read_documents(source: Any, *, column: str | None = None) -> list[str]:
    """Raw documents from a list of strings, a folder of ``.txt`` files (one document each,
    sorted by path, searched recursively), a ``.txt``/``.txt.gz`` file with one document per
    line, or a CSV file (``column`` names the text column)."""
    if isinstance(source, (list, tuple)):
        bad = [i for i, doc in enumerate(source) if not isinstance(doc, str)]
        if bad:
            raise TypeError(f"documents must be strings; item {bad[0]} is {type(source[bad[0]])}.")
        return list(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a list of strings or a path, got {type(source).__name__}.")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"corpus {path} does not exist.")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(f"folder {path} holds no .txt files.")
        return [p.read_text(encoding="utf-8", errors="replace") for p in files]
    name = path.name.lower()
    if name.endswith(".csv"):
        import pandas as pd

        if column is None:
            raise ValueError("a CSV corpus needs column= (the text column).")
        frame = pd.read_csv(path)
        if column not in frame.columns:
            raise ValueError(f"column {column!r} not found; columns are {list(frame.columns)}.")
        return frame[column].fillna("").astype(str).tolist()
    if name.endswith(".txt.gz"):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    if name.endswith(".txt"):
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    raise ValueError(f"unsupported corpus file {path}; expected .txt, .txt.gz, .csv or a folder.")


def vectorize(
    documents: Sequence[str],
    *,
    max_features: int | None = 2000,
    min_df: int | float = 2,
    max_df: int | float = 0.5,
    stop_words: str | Sequence[str] | None = "english",
    lowercase: bool = True,
    token_pattern: str = r"(?u)\b[a-zA-Z][a-zA-Z]+\b",
) -> Corpus:
    """Bag of words with scikit-learn's ``CountVectorizer``: English stop words removed, words
    in at least ``min_df`` documents and at most ``max_df`` of them, the ``max_features`` most
    frequent kept; tokens are alphabetic words of 2+ letters. Documents left without any
    vocabulary word are dropped (their count is logged and kept in ``Corpus.dropped``).

    Raises ``ValueError`` for an empty corpus and for settings that leave no vocabulary."""
    from sklearn.feature_extraction.text import CountVectorizer

    documents = list(documents)
    if not documents:
        raise ValueError("the corpus is empty: no documents.")
    settings = dict(
        max_features=max_features,
        min_df=min_df,
        max_df=max_df,
        stop_words=stop_words
        if stop_words is None or isinstance(stop_words, str)
        else list(stop_words),
        lowercase=lowercase,
        token_pattern=token_pattern,
    )
    vectorizer = CountVectorizer(dtype=np.int64, **settings)
    try:
        bow = vectorizer.fit_transform(documents)
    except ValueError as err:  # "empty vocabulary; perhaps the documents only contain stop words"
        raise ValueError(
            f"the vocabulary is empty after vectorizing {len(documents)} documents "
            f"(min_df={min_df}, max_df={max_df}, stop_words={stop_words!r}): {err}"
        ) from None
    vocabulary = vectorizer.get_feature_names_out().tolist()
    return drop_empty_documents(bow.tocsr(), vocabulary, settings)


def vectorize_with_vocabulary(
    documents: Sequence[str], vocabulary: Sequence[str], settings: dict[str, Any] | None
) -> Any:
    """Count ``documents`` over a fixed ``vocabulary`` with the tokenizer ``settings`` of
    :func:`vectorize`: a CSR matrix ``(N, V)`` (empty documents kept as zero rows)."""
    from sklearn.feature_extraction.text import CountVectorizer

    settings = dict(settings or {})
    for key in ("max_features", "min_df", "max_df"):
        settings.pop(key, None)
    return CountVectorizer(vocabulary=list(vocabulary), dtype=np.int64, **settings).transform(
        list(documents)
    )


def drop_empty_documents(
    bow: Any, vocabulary: list[str], settings: dict[str, Any] | None = None
) -> Corpus:
    """A :class:`Corpus` from a sparse bag of words ``(N, V)`` without its empty rows (their
    count logged); ``ValueError`` when every row is empty."""
    lengths = np.asarray(bow.sum(axis=1)).ravel()
    kept = np.flatnonzero(lengths > 0)
    dropped = bow.shape[0] - len(kept)
    if dropped:
        logger.warning("dropped %d empty document(s) (no vocabulary words)", dropped)
    if len(kept) == 0:
        raise ValueError("every document is empty after vectorizing: no words to model.")
    return Corpus(bow[kept], vocabulary, settings, kept, dropped)


def load_bow(path: str | os.PathLike[str], *, split: str = "train") -> Corpus:
    """A bag of words from a file: the ProdLDA 20 Newsgroups archive layout (``.npz`` with
    ``{split}_indptr``, ``{split}_indices``, ``{split}_counts`` and ``vocab``), a
    ``scipy.sparse.save_npz`` file, or a dense ``.npy`` (N, V). Empty documents are dropped."""
    import scipy.sparse as sp

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag-of-words file {path} does not exist.")
    if path.suffix == ".npy":
        from bayesvae.data.validation import check_bow

        dense = check_bow("bow", load_numpy(path)).numpy().astype(np.int64)
        bow, vocabulary = sp.csr_matrix(dense), [str(i) for i in range(dense.shape[1])]
    elif path.suffix == ".npz":
        with load_numpy(path) as archive:
            keys = set(archive.keys())
            if {f"{split}_indptr", f"{split}_indices", f"{split}_counts"} <= keys:
                vocabulary = [str(w) for w in archive["vocab"]]
                bow = sp.csr_matrix(
                    (
                        archive[f"{split}_counts"].astype(np.int64),
                        archive[f"{split}_indices"],
                        archive[f"{split}_indptr"],
                    ),
                    shape=(len(archive[f"{split}_indptr"]) - 1, len(vocabulary)),
                )
            elif {"data", "indices", "indptr", "shape"} <= keys:
                bow = sp.load_npz(path).tocsr().astype(np.int64)
                vocabulary = [str(i) for i in range(bow.shape[1])]
            else:
                raise ValueError(
                    f"{path} is neither a ProdLDA bag-of-words archive (split {split!r}) nor a "
                    f"scipy sparse matrix; it holds {sorted(keys)}."
                )
        if bow.nnz and bow.data.min() < 0:
            raise ValueError(f"{path} has negative counts.")
    else:
        raise ValueError(f"unsupported bag-of-words file {path}; expected .npz or .npy.")
    return drop_empty_documents(bow, vocabulary, None)


def load_20news_prodlda(root: str | os.PathLike[str]) -> tuple[Corpus, Corpus]:
    """The ProdLDA paper's 20 Newsgroups (train 11,258 / test 7,487 documents over 1,995 words)
    from ``root/20news_prodlda_bow.npz``. Users who are online can fetch the original files
    from :data:`PRODLDA_20NEWS_URL`."""
    path = Path(root) / "20news_prodlda_bow.npz"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found; the paper's data are at {PRODLDA_20NEWS_URL} "
            "(see the data README for the layout)."
        )
    return load_bow(path, split="train"), load_bow(path, split="test")
