import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from bayesvae.diagnostics.topics import (
    TopicCollapseWarning,
    npmi_coherence,
    topic_collapse,
    topic_diversity,
)


def test_npmi_matches_a_hand_computation():
    # documents: {a, b}, {a, b}, {a, c}, {c}; counts above 1 must not matter
    reference = np.array([[1, 1, 0], [3, 2, 0], [1, 0, 1], [0, 0, 5]])
    p_a, p_b, p_c = 3 / 4, 2 / 4, 2 / 4
    npmi_ab = math.log((2 / 4) / (p_a * p_b)) / -math.log(2 / 4)
    npmi_ac = math.log((1 / 4) / (p_a * p_c)) / -math.log(1 / 4)
    npmi_bc = -1.0  # b and c never co-occur
    expected = (npmi_ab + npmi_ac + npmi_bc) / 3
    assert npmi_ab == pytest.approx(math.log(4 / 3) / math.log(2))
    scores = npmi_coherence([[0, 1, 2], [0, 1, 1]], sp.csr_matrix(reference))
    assert scores[0] == pytest.approx(expected)
    assert npmi_coherence([[0, 1]], reference)[0] == pytest.approx(npmi_ab)


def test_npmi_of_words_in_every_document_is_one():
    assert npmi_coherence([[0, 1]], np.ones((3, 2)))[0] == 1.0


def test_npmi_checks_its_input():
    with pytest.raises(ValueError, match="n >= 2"):
        npmi_coherence([[0]], np.ones((2, 2)))
    with pytest.raises(ValueError, match="outside the reference vocabulary"):
        npmi_coherence([[0, 5]], np.ones((2, 2)))
    with pytest.raises(ValueError, match="never_cooccurring"):
        npmi_coherence([[0, 1]], np.ones((2, 2)), never_cooccurring=-2)
    with pytest.raises(ValueError, match="window must be a positive"):
        npmi_coherence([[0, 1]], [[0, 1]], window=0)
    with pytest.raises(TypeError, match="sequences of word indices"):
        npmi_coherence([[0, 1]], np.ones((2, 2)), window=5)
    with pytest.raises(ValueError, match="negative word index"):
        npmi_coherence([[0, 1]], [[0, -1]], window=5)


def _lau_window_npmi(topic, documents, window, never_cooccurring):
    """Lau et al.'s toolkit, written out: a document of L tokens has L + w - 1 windows (tail
    positions 1 .. L + w - 1, each holding the w tokens before it); count the windows holding
    each word and each pair."""
    total, single, joint = 0, {}, {}
    for doc in documents:
        for tail in range(1, len(doc) + window):
            present = set(doc[max(0, tail - window) : tail])
            total += 1
            for word in present:
                single[word] = single.get(word, 0) + 1
            for a in present:
                for b in present:
                    joint[a, b] = joint.get((a, b), 0) + 1
    values = []
    for i, a in enumerate(topic):
        for b in topic[i + 1 :]:
            both = joint.get((a, b), 0)
            if both == 0:
                values.append(never_cooccurring)
            else:
                pmi = math.log(both * total / (single[a] * single[b]))
                values.append(pmi / -math.log(both / total))
    return float(np.mean(values))


def test_windowed_npmi_counts_windows_as_lau_et_al():
    rng = np.random.default_rng(0)
    documents = [rng.integers(0, 15, size=rng.integers(1, 30)) for _ in range(40)]
    topics = [[0, 1, 2, 3], [4, 9, 14, 7], [2, 11, 5, 13]]
    for window in (1, 3, 20):
        for never in (-1.0, 0.0):
            scores = npmi_coherence(topics, documents, window=window, never_cooccurring=never)
            expected = [_lau_window_npmi(t, documents, window, never) for t in topics]
            np.testing.assert_allclose(scores, expected, rtol=1e-12)
    # window 1: no two words share a window
    assert npmi_coherence([[0, 1]], documents, window=1, never_cooccurring=0.0)[0] == 0.0


def test_a_pair_that_never_cooccurs_counts_as_asked():
    reference = np.array([[1, 0], [0, 1]])
    assert npmi_coherence([[0, 1]], reference)[0] == -1.0
    assert npmi_coherence([[0, 1]], reference, never_cooccurring=0.0)[0] == 0.0


def test_document_npmi_agrees_with_gensim():
    """gensim's c_npmi with a window as long as the longest document counts documents, as
    npmi_coherence does; with every pair co-occurring, only gensim's epsilon of 1e-12 differs."""
    gensim = pytest.importorskip("gensim")
    from gensim.corpora import Dictionary
    from gensim.models.coherencemodel import CoherenceModel

    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(12)]
    texts = [list(rng.choice(words, size=rng.integers(6, 12))) for _ in range(200)]
    topics = [
        ["w0", "w1", "w2", "w3", "w4"],
        ["w5", "w6", "w7", "w8", "w9"],
        ["w10", "w11", "w0", "w5", "w2"],
    ]
    index = {word: i for i, word in enumerate(words)}
    bow = np.zeros((len(texts), len(words)))
    for row, text in enumerate(texts):
        for word in text:
            bow[row, index[word]] += 1
    top = [[index[word] for word in topic] for topic in topics]
    together = (bow > 0).astype(int).T @ (bow > 0).astype(int)
    assert (together > 0).all()  # every pair co-occurs somewhere
    theirs = CoherenceModel(
        topics=topics,
        texts=texts,
        dictionary=Dictionary(texts),
        coherence="c_npmi",
        window_size=max(len(text) for text in texts),
        processes=1,
    ).get_coherence_per_topic()
    np.testing.assert_allclose(npmi_coherence(top, bow), theirs, atol=1e-8)
    assert gensim.__version__


def test_diversity():
    assert topic_diversity([[0, 1], [2, 3]]) == 1.0
    assert topic_diversity([[0, 1], [0, 1]]) == 0.5


def test_collapse_finds_duplicates_and_dead_topics():
    top = np.array([[0, 1, 2, 3], [0, 1, 2, 4], [5, 6, 7, 8]])
    doc_topics = np.array([[0.5, 0.499, 0.001], [0.5, 0.499, 0.001]])
    with pytest.warns(TopicCollapseWarning):
        found = topic_collapse(top, doc_topics)
    assert [d[:2] for d in found["duplicates"]] == [(0, 1)]
    assert found["dead"] == [2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert topic_collapse(np.array([[0, 1], [2, 3]]))["problems"] == []
