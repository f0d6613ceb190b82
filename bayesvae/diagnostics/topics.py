"""Topic quality: NPMI coherence against a reference corpus, topic diversity, and warnings when
topics collapse (near-duplicates or dead topics)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from bayesvae.data.validation import check_number

__all__ = [
    "npmi_coherence",
    "topic_diversity",
    "topic_collapse",
    "TopicCollapseWarning",
]


class TopicCollapseWarning(UserWarning):
    """Some topics are near-duplicates of each other, or (almost) never used."""


def npmi_coherence(
    top_words: Any,
    reference: Any,
    *,
    window: int | None = None,
    never_cooccurring: float = -1.0,
) -> np.ndarray:
    """NPMI coherence of each topic's top words against the ``reference`` corpus.

    For each pair of a topic's top words (indices ``top_words: (K, n)``), with ``p(i)`` the share
    of reference units (documents, or windows) containing word ``i`` and ``p(i, j)`` the share
    containing both: ``NPMI = log(p(i, j) / (p(i) p(j))) / -log p(i, j)``, 1 when both occur in
    every unit. A topic's coherence is the mean over its ``n (n - 1) / 2`` pairs.

    Args:
        top_words: ``(K, n)`` word indices, ``n >= 2``.
        reference: with ``window=None``, a bag of words ``(D, V)`` (dense or sparse) whose
            documents are the units (document co-occurrence). With ``window=w``, the documents
            as sequences of word indices (a list of 1-D integer arrays, in word order), whose
            sliding windows of ``w`` tokens are the units, counted as in Lau et al.'s
            ``topic_interpretability`` toolkit (used for the ProdLDA paper's figures, with
            ``w = 20``): a document of ``L >= 1`` tokens gives ``L + w - 1`` windows, the
            shorter ones at both ends included.
        never_cooccurring: the score of a pair that shares no unit: ``-1.0`` (NPMI's limit, the
            default) or ``0.0`` (Lau et al.'s toolkit).

    Returns:
        ``(K,)`` scores; their mean is the model's coherence.
    """
    import scipy.sparse as sp

    top = np.asarray(top_words, dtype=np.int64)
    if top.ndim != 2 or top.shape[1] < 2:
        raise ValueError(f"top_words must be (topics, n >= 2) indices, got shape {top.shape}.")
    if top.min() < 0:
        raise ValueError("top_words index a word outside the reference vocabulary.")
    never_cooccurring = check_number("never_cooccurring", never_cooccurring, low=-1, high=1)
    if window is None:
        occurs = sp.csr_matrix(reference, dtype=np.float64)
    else:
        occurs = _window_occurrences(reference, window, np.unique(top))
    occurs.data = (occurs.data > 0).astype(np.float64)
    occurs.eliminate_zeros()
    num_units = occurs.shape[0]
    if num_units == 0:
        raise ValueError("the reference corpus has no documents.")
    if top.max() >= occurs.shape[1]:
        raise ValueError("top_words index a word outside the reference vocabulary.")
    scores = np.empty(len(top))
    for k, words in enumerate(top):
        columns = occurs[:, words]
        joint = np.asarray((columns.T @ columns).todense()) / num_units  # (n, n)
        single = np.diag(joint)
        values = []
        for a in range(len(words)):
            for b in range(a + 1, len(words)):
                p_ab = joint[a, b]
                if p_ab <= 0:
                    values.append(float(never_cooccurring))
                elif p_ab >= 1:
                    values.append(1.0)
                else:
                    pmi = math.log(p_ab / (single[a] * single[b]))
                    values.append(pmi / -math.log(p_ab))
        scores[k] = float(np.mean(values))
    return scores


def _window_occurrences(documents: Any, window: int, words: np.ndarray) -> Any:
    """Sparse ``(windows, V)`` counts of ``words`` (the others are left out) in each sliding
    window of ``window`` tokens over ``documents`` (sequences of word indices): token ``p`` of a
    document of ``L`` tokens lies in its windows ``p .. p + window - 1`` of ``L + window - 1``."""
    import scipy.sparse as sp

    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive number of tokens, got {window!r}.")
    if isinstance(documents, np.ndarray) and documents.dtype != object or sp.issparse(documents):
        raise TypeError(
            "with window=, reference must be the documents as sequences of word indices (a list "
            "of 1-D integer arrays), not a bag-of-words matrix."
        )
    sequences = [np.asarray(doc, dtype=np.int64).reshape(-1) for doc in documents]
    lengths = np.array([len(doc) for doc in sequences], dtype=np.int64)
    num_windows = np.where(lengths > 0, lengths + window - 1, 0)
    tokens = np.concatenate([np.zeros(0, dtype=np.int64), *sequences])
    if len(tokens) and tokens.min() < 0:
        raise ValueError("reference has a negative word index.")
    width = int(max(words.max(), tokens.max() if len(tokens) else 0)) + 1
    # global index of each token's first window: its document's first window + its position
    first_window = np.repeat(np.cumsum(num_windows) - num_windows, lengths)
    first_token = np.repeat(np.cumsum(lengths) - lengths, lengths)
    first_window += np.arange(len(tokens)) - first_token
    kept = np.isin(tokens, words)
    rows = (first_window[kept, None] + np.arange(window)[None, :]).reshape(-1)
    cols = np.repeat(tokens[kept], window)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(int(num_windows.sum()), width))


def topic_diversity(top_words: Any) -> float:
    """Share of unique words among all topics' top words ``(K, n)`` (Dieng et al. 2020 use
    n = 25): 1 when no two topics share a top word, 1/K when all topics are the same."""
    top = np.asarray(top_words)
    return float(len(np.unique(top)) / top.size)


def topic_collapse(
    top_words: Any,
    doc_topics: Any = None,
    *,
    overlap_threshold: float = 0.5,
    dead_share: float = 0.1,
    warn: bool = True,
) -> dict[str, Any]:
    """Find collapsed topics: pairs whose top words ``(K, n)`` overlap by more than
    ``overlap_threshold`` (Jaccard), and, given document-topic proportions ``(N, K)``, topics
    whose mean proportion is below ``dead_share / K``. Issues a :class:`TopicCollapseWarning`
    when ``warn`` and anything is found; returns ``{"duplicates": [(i, j, jaccard)], "dead":
    [k], "problems": [sentences]}``."""
    top = np.asarray(top_words)
    sets = [set(row.tolist()) for row in top]
    duplicates = []
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            jaccard = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
            if jaccard > overlap_threshold:
                duplicates.append((i, j, round(jaccard, 3)))
    dead: list[int] = []
    if doc_topics is not None:
        usage = np.asarray(doc_topics).mean(axis=0)
        dead = np.flatnonzero(usage < dead_share / len(usage)).tolist()
    problems = []
    if duplicates:
        problems.append(
            f"{len(duplicates)} pair(s) of near-duplicate topics (top-word Jaccard > "
            f"{overlap_threshold}): {duplicates[:5]}"
        )
    if dead:
        problems.append(f"{len(dead)} dead topic(s) (almost never used): {dead[:10]}")
    if warn:
        for problem in problems:
            warnings.warn(problem, TopicCollapseWarning, stacklevel=2)
    return {"duplicates": duplicates, "dead": dead, "problems": problems}
