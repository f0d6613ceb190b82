"""Generative data augmentation with a conditional VAE."""

import numpy as np
import pytest

import bayesvae
from bayesvae.augment import AugmentedData, augment, generation_counts
from bayesvae.models import VAE, ConditionalVAE


def test_augment_adds_n_per_class_generated_rows_after_the_originals(digits):
    x, y = digits.x[:300], digits.y[:300]
    augmented = augment(x, y, n_per_class=7, epochs=3, hidden_dims=(32,), latent_dim=2)
    assert isinstance(augmented, AugmentedData)
    x_big, y_big = augmented
    assert x_big.shape == (300 + 70, 64) and y_big.shape == (370,)
    np.testing.assert_array_equal(x_big[:300], x)
    np.testing.assert_array_equal(y_big[:300], y)
    np.testing.assert_array_equal(np.bincount(y_big[300:]), np.full(10, 7))
    assert augmented.synthetic.sum() == augmented.num_generated == 70
    assert x_big.dtype == np.float32 and ((x_big >= 0) & (x_big <= 1)).all()
    assert isinstance(augmented.model, ConditionalVAE) and len(augmented.history) == 3


def test_balance_brings_every_class_to_the_largest(digits):
    keep = np.r_[np.flatnonzero(digits.y == 0)[:40], np.flatnonzero(digits.y == 1)[:10]]
    x, y = digits.x[keep], digits.y[keep]
    augmented = augment(x, y, balance=True, epochs=2, hidden_dims=(16,), seed=1)
    np.testing.assert_array_equal(np.bincount(augmented.y), [40, 40])
    assert augmented.synthetic.sum() == 30
    np.testing.assert_array_equal(
        generation_counts(np.array([0, 0, 0, 1, 2]), 3, n_per_class=2, balance=True), [2, 4, 4]
    )


def test_a_fitted_model_is_reused_and_the_same_seed_gives_the_same_rows(digits):
    cvae = ConditionalVAE(64, num_classes=10, latent_dim=2, hidden_dims=(16,), seed=0)
    bayesvae.fit(cvae, (digits.x[:200], digits.y[:200]), epochs=2, progress=False)
    first = augment(digits.x[:200], digits.y[:200], n_per_class=3, model=cvae, seed=5)
    second = augment(digits.x[:200], digits.y[:200], n_per_class=3, model=cvae, seed=5)
    assert first.model is cvae and first.history is None
    np.testing.assert_array_equal(first.x, second.x)
    binary = augment(digits.x[:200], digits.y[:200], n_per_class=3, model=cvae, sample_mean=False)
    assert set(np.unique(binary.x[200:])) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(), ValueError, "n_per_class"),
        (dict(n_per_class=0), ValueError, "n_per_class"),
        (dict(n_per_class=2, y=np.zeros(5, int)), ValueError, "5 labels for 20 data rows"),
        (dict(n_per_class=2, y=np.full(20, -1)), ValueError, "must lie in"),
        (dict(n_per_class=2, model=VAE(64)), TypeError, "ConditionalVAE"),
        (dict(n_per_class=2, x=np.full((20, 64), 2.0)), ValueError, r"\[0, 1\]"),
    ],
)
def test_bad_input_is_refused_before_training(digits, kwargs, error, message):
    options = dict(x=digits.x[:20], y=digits.y[:20], epochs=1)
    options.update(kwargs)
    with pytest.raises(error, match=message):
        augment(options.pop("x"), options.pop("y"), **options)
