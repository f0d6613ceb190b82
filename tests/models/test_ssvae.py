"""The M2 semi-supervised VAE: its enumerated objective, queries, training, saving, bad input."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch

import bayesvae
from bayesvae.infer.objectives import make_elbo
from bayesvae.models import SemiSupervisedVAE


def small(**options):
    return SemiSupervisedVAE(16, num_classes=3, latent_dim=2, hidden_dims=(8,), seed=0, **options)


X = torch.rand(6, 16).round()


def loss_per_row(model, x, y, particles=4000):
    objective = make_elbo("enum", num_particles=particles, max_plate_nesting=1)
    return objective.loss(model.model, model.guide, x, y) / x.shape[0]


def test_an_unlabelled_row_sums_the_label_out_exactly():
    model = small()
    unlabelled = torch.full((6,), -1)
    pyro.set_rng_seed(0)
    enumerated = -loss_per_row(model, X, unlabelled)
    by_hand = float(model.elbo(X, num_samples=4000, seed=0).mean())
    assert enumerated == pytest.approx(by_hand, abs=0.05)


def test_a_labelled_row_gets_the_labelled_bound_and_only_its_label():
    model = small(classifier_weight=0.0)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    pyro.set_rng_seed(0)
    enumerated = -loss_per_row(model, X, labels)
    labelled_bound = float(model.elbo(X, labels, num_samples=4000, seed=0).mean())
    assert enumerated == pytest.approx(labelled_bound - math.log(3), abs=0.05)
    # the label is pinned: the classifier gets no gradient from labelled rows without the term
    loss = make_elbo("enum", max_plate_nesting=1).differentiable_loss(
        model.model, model.guide, X, labels
    )
    loss.backward()
    assert all(float(p.grad.abs().max()) == 0 for p in model.classifier.parameters())


def test_the_classification_term_weights_log_q_of_labelled_rows_only():
    labels = torch.tensor([0, 1, -1, -1, 2, -1])
    with_term, without = small(classifier_weight=5.0), small(classifier_weight=0.0)
    trace = pyro.poutine.trace(with_term.model).get_trace(X, labels)
    factor = trace.nodes["classification"]["fn"].log_factor
    log_q = torch.log_softmax(with_term.classifier_logits(X), -1)
    expected = torch.where(labels >= 0, 5.0 * log_q[torch.arange(6), labels.clamp(min=0)], 0.0)
    torch.testing.assert_close(factor, expected)
    assert "classification" not in pyro.poutine.trace(without.model).get_trace(X, labels).nodes


def test_the_fit_loops_evaluation_sums_a_guide_enumerated_label_out(digits):
    # the evaluator replays one guide draw; a label enumerated in the guide must stay summed out
    from bayesvae.infer.engine import evaluate

    model = SemiSupervisedVAE(64, num_classes=10, latent_dim=4, hidden_dims=(32,), seed=0)
    x = torch.as_tensor(digits.x[:300])
    terms = evaluate(model, [(x, torch.full((300,), -1))], 300)
    expected = float(model.elbo(x, num_samples=50, seed=0).mean())
    assert terms["elbo"] == pytest.approx(expected, abs=1.0)


def test_queries():
    model = small()
    probs = model.predict_proba(X)
    assert probs.shape == (6, 3) and torch.allclose(probs.sum(-1), torch.ones(6))
    assert torch.equal(model.classify(X), probs.argmax(-1))
    assert model.sample(4, y=2, seed=0).shape == (4, 16)
    assert model.sample(4, seed=0).shape == (4, 16)
    assert model.reconstruct(X).shape == (6, 16)
    loc, scale = model.encode(X)
    assert loc.shape == scale.shape == (6, 2)
    # log p(x) sums the label out: the log of the mean of p(x | y) over the uniform prior
    marginal = model.log_likelihood(X, num_samples=200, seed=1)
    conditional = torch.stack(
        [model.log_likelihood(X, c, num_samples=200, seed=1) for c in range(3)]
    )
    torch.testing.assert_close(
        marginal, torch.logsumexp(conditional, 0) - math.log(3), atol=0.3, rtol=0
    )
    mixed = model.log_likelihood(X, [0, -1, 2, -1, -1, 1], num_samples=50, seed=0)
    assert mixed.shape == (6,) and torch.isfinite(mixed).all()


def test_m2_learns_to_classify_from_a_few_labels(digits):
    rng = np.random.default_rng(0)
    train, test = slice(0, 1500), slice(1500, None)
    labels = np.full(1500, -1)
    keep = rng.choice(1500, 100, replace=False)
    labels[keep] = digits.y[train][keep]
    model = SemiSupervisedVAE(
        64, num_classes=10, latent_dim=8, hidden_dims=(128,), classifier_weight=20, seed=0
    )
    result = bayesvae.fit(
        model, (digits.x[train], labels), val=digits.x[test], epochs=25, batch_size=64, lr=3e-3,
        progress=False,
    )  # fmt: skip
    assert result.settings["elbo"] == "enum"
    accuracy = float((model.classify(digits.x[test]).numpy() == digits.y[test]).mean())
    assert accuracy > 0.75, accuracy  # chance is 0.1
    history = result.history
    assert history["val_elbo"].iloc[-1] > history["val_elbo"].iloc[0] + 3


def test_save_and_load_keep_the_classifier(tmp_path):
    model = small(classifier_weight=3.0)
    result = bayesvae.fit(
        model, (X.numpy(), [0, 1, -1, -1, 2, -1]), epochs=2, batch_size=3, progress=False
    )
    result.save(tmp_path / "run")
    loaded = bayesvae.load(tmp_path / "run")
    assert isinstance(loaded, SemiSupervisedVAE) and loaded.classifier_weight == 3.0
    torch.testing.assert_close(loaded.predict_proba(X), model.predict_proba(X))


def test_plain_pyro_svi_trains_it():
    model = small()
    svi = pyro.infer.SVI(
        model.model, model.guide, pyro.optim.Adam({"lr": 1e-2}),
        pyro.infer.TraceEnum_ELBO(max_plate_nesting=1),
    )  # fmt: skip
    labels = torch.tensor([0, 1, -1, -1, 2, -1])
    losses = [svi.step(X, labels) for _ in range(30)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


@pytest.mark.parametrize(
    "labels, error, message",
    [
        ([0, 1, 3, -1, 0, 0], ValueError, r"lie in \[0, 2\] or be -1/NaN"),
        ([0, 1, -2, -1, 0, 0], ValueError, r"lie in \[0, 2\]"),
        ([0, 1, 0.5, -1, 0, 0], TypeError, "whole-number"),
        ([0, 1, -1], ValueError, "3 labels for 6 data rows"),
        ([[0], [1], [2], [0], [1], [2]], ValueError, r"labels \(N,\)"),
        (["a"] * 6, TypeError, "integer labels"),
        ([0, 1, np.inf, -1, 0, 0], ValueError, "infinite"),
    ],
)
def test_bad_labels_are_refused_before_training(labels, error, message):
    with pytest.raises(error, match=message):
        bayesvae.fit(small(), (X.numpy(), labels), epochs=1, progress=False)


def test_nan_marks_an_unlabelled_row():
    _, labels = small().check_data(X, [0.0, np.nan, 2.0, np.nan, 1.0, 0.0])
    assert labels.tolist() == [0, -1, 2, -1, 1, 0]


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(classifier_weight=-1.0), "classifier_weight must be a finite number >= 0"),
        (dict(classifier_weight=float("nan")), "classifier_weight"),
        (dict(encoder="conv"), "MLP encoder"),
        (dict(flows=1), "no flow guide"),
        (dict(classifier_hidden=(0,)), "classifier_hidden"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        small(**options)


def test_objectives_that_cannot_sum_the_label_out_are_refused():
    with pytest.raises(ValueError, match="summed out by enumeration"):
        bayesvae.fit(small(), (X.numpy(), [0] * 6), elbo="trace", progress=False)


def test_m1_plus_m2_stacks_m2_on_a_vaes_latent_means(digits):
    """Kingma et al.'s M1+M2: M2 with a Gaussian likelihood on the posterior means of a VAE
    fitted without labels (as docs/vae_family.md and benchmarks/augment.py do it)."""
    train, test = slice(0, 1500), slice(1500, None)
    m1 = bayesvae.VAE(64, latent_dim=8, hidden_dims=(128,), seed=0)
    bayesvae.fit(m1, digits.x[train], epochs=50, batch_size=64, lr=3e-3, progress=False)
    features = m1.encode(digits.x)[0].numpy()
    labels = bayesvae.data.keep_labels(digits.y[train], 100, seed=0)
    m2 = SemiSupervisedVAE(
        8, num_classes=10, latent_dim=8, hidden_dims=(128,), likelihood="gaussian",
        classifier_weight=20, seed=0,
    )  # fmt: skip
    bayesvae.fit(m2, (features[train], labels), epochs=25, batch_size=64, lr=3e-3, progress=False)
    accuracy = float((m2.classify(features[test]).numpy() == digits.y[test]).mean())
    assert accuracy > 0.75, accuracy  # chance is 0.1
    # the learned observation scale moved off its initial 1 (log scale 0)
    assert m2.decoder.log_scale.abs().max() > 0.1
