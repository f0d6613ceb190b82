"""The sentence VAE: its Pyro program, queries, training, saving, free bits and bad input."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch

import bayesvae
from bayesvae.data.sentences import Vocabulary, tokenize
from bayesvae.infer.objectives import make_elbo
from bayesvae.models import SentenceVAE

TEXTS = [
    "the cat sat on the mat .",
    "a dog ran in the park .",
    "the dog sat on the mat .",
    "a cat ran in the park .",
    "my cat likes fish .",
    "your dog likes bones .",
]
VOCAB = Vocabulary.build([tokenize(t) for t in TEXTS])


def small(**options):
    settings = dict(latent_dim=3, embedding_dim=8, hidden_dim=16, seed=0)
    return SentenceVAE(VOCAB, **{**settings, **options})


@pytest.fixture(scope="module")
def trained():
    pyro.clear_param_store()
    model = small(latent_dim=4, embedding_dim=16, hidden_dim=32)
    result = bayesvae.fit(
        model, model.encode_text(TEXTS * 40), epochs=20, batch_size=32, lr=1e-2, kl_warmup=4,
        progress=False,
    )  # fmt: skip
    return model, result


def test_the_likelihood_is_the_sum_of_the_words_log_probabilities():
    model = small().eval()
    ids = torch.as_tensor(model.encode_text(TEXTS[:2]))
    z = torch.randn(2, 3)
    logits = model.word_logits(z, ids)
    log_probs = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    expected = (log_probs * (ids[:, 1:] != 0)).sum(-1)
    torch.testing.assert_close(model.words_dist(z, ids).log_prob(ids[:, 1:]), expected)
    # a longer padded copy of the same sentences scores the same (packing: padding is inert)
    padded = torch.cat([ids, torch.zeros(2, 5, dtype=torch.int64)], 1)
    torch.testing.assert_close(model.words_dist(z, padded).log_prob(padded[:, 1:]), expected)


def test_word_dropout_acts_in_training_only():
    model = small(word_dropout=0.9)
    ids = torch.as_tensor(model.encode_text(TEXTS))
    z = torch.zeros(len(TEXTS), 3)
    model.eval()
    torch.testing.assert_close(model.word_logits(z, ids), model.word_logits(z, ids))
    model.train()
    pyro.set_rng_seed(0)
    assert not torch.allclose(model.word_logits(z, ids), model.word_logits(z, ids))


def test_it_learns_the_corpus_and_its_queries_answer(trained):
    model, result = trained
    history = result.history
    assert history["train_elbo"].iloc[-1] > history["train_elbo"].iloc[0] + 5
    assert all(text in TEXTS for text in model.reconstruct(TEXTS[:2]))
    samples = model.sample(5, seed=0)
    assert len(samples) == 5 and sum(s in TEXTS for s in samples) >= 3
    assert model.sample(3, seed=1) == model.sample(3, seed=1)
    path = model.interpolate(TEXTS[0], TEXTS[1], steps=4)
    assert len(path) == 4 and all(isinstance(p, str) for p in path)
    loc, scale = model.encode(TEXTS)
    assert loc.shape == scale.shape == (6, 4)
    assert float(model.kl(TEXTS).mean()) > 0.1  # not collapsed (a collapsed z has KL ~ 0)
    log_px = model.log_likelihood(TEXTS, num_samples=64, seed=0)
    assert log_px.shape == (6,) and bool((log_px < 0).all())
    # IS with more particles is tighter on average than the ELBO with one draw
    figures = model.perplexity(TEXTS, num_samples=64, seed=0)
    words = sum(len(tokenize(t)) + 1 for t in TEXTS)  # <eos> counts as a word
    assert figures["words"] == words
    assert figures["ppl_word"] == pytest.approx(math.exp(-float(log_px.sum()) / words), rel=1e-5)


def test_importance_sampling_bounds_are_above_the_elbo(trained):
    model, _ = trained
    model.eval()
    ids = torch.as_tensor(model.encode_text(TEXTS))
    pyro.set_rng_seed(0)
    elbos = [-make_elbo("trace").loss(model.model, model.guide, ids) / len(ids) for _ in range(50)]
    iwae = float(model.log_likelihood(TEXTS, num_samples=200, seed=0).mean())
    assert iwae >= np.mean(elbos) - 0.05, (iwae, np.mean(elbos))


def test_save_and_load_keep_vocabulary_and_weights(trained, tmp_path):
    model, result = trained
    result.save(tmp_path / "run")
    loaded = bayesvae.load(tmp_path / "run")
    assert isinstance(loaded, SentenceVAE) and loaded.vocabulary == model.vocabulary
    torch.testing.assert_close(loaded.encode(TEXTS)[0], model.encode(TEXTS)[0])


def test_free_bits_floor_each_dimensions_kl():
    model = small(free_bits=0.5)
    ids = torch.as_tensor(model.encode_text(TEXTS))
    trace = pyro.poutine.trace(model.guide).get_trace(ids)
    posterior = model.posterior(ids)
    loc, scale = posterior.base_dist.loc, posterior.base_dist.scale
    kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).mean(0)
    expected = (0.5 - kl).clamp(min=0).sum()
    torch.testing.assert_close(trace.nodes["free_bits"]["fn"].log_factor, expected.expand(6))
    # the guide's factor counts against the objective: the loss rises by N * shortfall
    pyro.set_rng_seed(0)
    with_floor = make_elbo("meanfield").loss(model.model, model.guide, ids)
    model.free_bits = 0.0
    pyro.set_rng_seed(0)
    without = make_elbo("meanfield").loss(model.model, model.guide, ids)
    assert with_floor - without == pytest.approx(6 * float(expected.detach()), rel=1e-4)


def test_plain_pyro_svi_and_the_trace_objective_train_it():
    model = small()
    ids = torch.as_tensor(model.encode_text(TEXTS))
    svi = pyro.infer.SVI(model.model, model.guide, pyro.optim.Adam({"lr": 1e-2}),
                         pyro.infer.Trace_ELBO())  # fmt: skip
    losses = [svi.step(ids) for _ in range(20)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


@pytest.mark.parametrize(
    "ids, error, message",
    [
        (np.array([[1, 5, 2], [1, 6, 0]]), ValueError, "followed only by padding"),
        (np.array([[1, 5, 2], [5, 6, 2]]), ValueError, "start with <bos>"),
        (np.array([[1, 5, 2, 0, 7]]), ValueError, "followed only by padding"),
        (np.array([[1, 500, 2]]), ValueError, r"must lie in \[0, "),
        (np.array([[1.0, 5.0, 2.0]]), TypeError, "integer word ids"),
        (np.array([1, 5, 2]), ValueError, r"shape \(N, T\)"),
        (np.array([[1, 2]]), ValueError, "T >= 3"),
        (["the cat"], TypeError, "encode_text"),
    ],
)
def test_bad_ids_are_refused_before_training(ids, error, message):
    with pytest.raises(error, match=message):
        bayesvae.fit(small(), ids, epochs=1, progress=False)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(word_dropout=1.0), "word_dropout must be a finite number in"),
        (dict(free_bits=-1.0), "free_bits must be a finite number"),
        (dict(rnn="transformer"), "rnn"),
        (dict(latent_dim=0), "latent_dim"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        small(**options)


def test_bad_queries_and_objectives():
    model = small()
    with pytest.raises(TypeError, match="vocabulary must be"):
        SentenceVAE("the cat")
    with pytest.raises(ValueError, match="a vocabulary starts with"):
        SentenceVAE(["cat", "dog"])
    with pytest.raises(TypeError, match="a list of strings"):
        model.encode("the cat")
    with pytest.raises(ValueError, match="at least one word"):
        model.encode(["the cat", "..."[:0]])
    with pytest.raises(ValueError, match="steps must be at least 2"):
        model.interpolate("the cat", "a dog", steps=1)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=0)
    with pytest.raises(ValueError, match="no batch of particles"):
        bayesvae.fit(model, model.encode_text(TEXTS), elbo="iwae", num_particles=2,
                     progress=False)  # fmt: skip


def test_importance_sampling_chunks_stay_within_the_logit_budget(monkeypatch):
    import bayesvae.models.sentence_vae as module

    model = small().eval()
    sizes = []
    original = model.words_dist

    def spy(z, ids):
        sizes.append(len(ids))
        return original(z, ids)

    monkeypatch.setattr(model, "words_dist", spy)
    full = model.log_likelihood(TEXTS, num_samples=12, particle_batch=12, seed=0)
    # a budget of 3 chunks' worth of rows: 12 draws of 6 sentences go 1 draw at a time
    width = 6 * model.encode_text(TEXTS).shape[1] * len(VOCAB)
    monkeypatch.setattr(module, "_LOGIT_BUDGET", width)
    sizes.clear()
    chunked = model.log_likelihood(TEXTS, num_samples=12, particle_batch=12, seed=0)
    assert set(sizes) == {6} and len(sizes) == 12
    # other chunks draw other noise: the same estimate up to Monte Carlo error
    torch.testing.assert_close(chunked, full, atol=0.5, rtol=0)
