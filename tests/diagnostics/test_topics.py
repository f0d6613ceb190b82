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
