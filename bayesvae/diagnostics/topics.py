"""Topic quality: NPMI coherence against a reference corpus, topic diversity, and warnings when
topics collapse (near-duplicates or dead topics)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

__all__ = [
    "npmi_coherence",
    "topic_diversity",
    "topic_collapse",
    "TopicCollapseWarning",
]


class TopicCollapseWarning(UserWarning):
    """Some topics are near-duplicates of each other, or (almost) never used."""


def npmi_coherence(top_words: Any, reference: Any) -> np.ndarray:
    """NPMI coherence of each topic's top words, by document co-occurrence in ``reference``.

    For each pair of a topic's top words (indices ``top_words: (K, n)``), with ``p(i)`` the share
    of reference documents containing word ``i`` and ``p(i, j)`` the share containing both:
    ``NPMI = log(p(i, j) / (p(i) p(j))) / -log p(i, j)``, taken as -1 when the words never
    co-occur and 1 when both occur in every document. A topic's coherence is the mean over its
    ``n (n - 1) / 2`` pairs. ``reference``: bag of words ``(D, V)``, dense or sparse. Returns
    ``(K,)``; its mean is the model's coherence.
    """
    import scipy.sparse as sp

    top = np.asarray(top_words, dtype=np.int64)
    if top.ndim != 2 or top.shape[1] < 2:
        raise ValueError(f"top_words must be (topics, n >= 2) indices, got shape {top.shape}.")
    occurs = sp.csr_matrix(reference, dtype=np.float64)
    occurs.data = (occurs.data > 0).astype(np.float64)
    occurs.eliminate_zeros()
    num_docs = occurs.shape[0]
    if num_docs == 0:
        raise ValueError("the reference corpus has no documents.")
    if top.max() >= occurs.shape[1] or top.min() < 0:
        raise ValueError("top_words index a word outside the reference vocabulary.")
    scores = np.empty(len(top))
    for k, words in enumerate(top):
        columns = occurs[:, words]
        joint = np.asarray((columns.T @ columns).todense()) / num_docs  # (n, n)
        single = np.diag(joint)
        values = []
        for a in range(len(words)):
            for b in range(a + 1, len(words)):
                p_ab = joint[a, b]
                if p_ab <= 0:
                    values.append(-1.0)
                elif p_ab >= 1:
                    values.append(1.0)
                else:
                    pmi = math.log(p_ab / (single[a] * single[b]))
                    values.append(pmi / -math.log(p_ab))
        scores[k] = float(np.mean(values))
    return scores


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
