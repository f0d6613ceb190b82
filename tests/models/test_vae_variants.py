"""The wider VAE family: conditional, hierarchical, flow-guided and Gumbel-softmax VAEs, and the
importance-weighted objective."""

import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import SVI, RenyiELBO, Trace_ELBO, TraceEnum_ELBO

import bayesvae
from bayesvae.infer.objectives import ImportanceWeightedELBO, make_elbo
from bayesvae.models import (
    VAE,
    ConditionalVAE,
    GumbelSoftmaxVAE,
    HierarchicalVAE,
    MixturePriorVAE,
)

SMALL = dict(hidden_dims=(32,), seed=0)


def small_models():
    return {
        "vae": VAE(64, latent_dim=4, **SMALL),
        "cvae": ConditionalVAE(64, num_classes=10, latent_dim=4, **SMALL),
        "hvae": HierarchicalVAE(64, latent_dim=4, top_latent_dim=2, top_hidden_dims=(8,), **SMALL),
        "iaf": VAE(64, latent_dim=4, flows=2, **SMALL),
        "spline": VAE(64, latent_dim=4, flows=1, flow_type="spline", **SMALL),
        "gumbel": GumbelSoftmaxVAE(64, num_variables=4, categories=3, **SMALL),
        "mixture": MixturePriorVAE(64, components=3, latent_dim=4, **SMALL),
    }


def data_for(model, digits, n=None):
    x, y = torch.as_tensor(digits.x[:n]), torch.as_tensor(digits.y[:n])
    return (x, y) if isinstance(model, ConditionalVAE) else x


# ----------------------------------------------------------------------- conditional VAE
def test_conditional_samples_are_of_the_asked_class(digits):
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(max_iter=2000).fit(digits.x, digits.y)
    cvae = ConditionalVAE(64, num_classes=10, latent_dim=2, hidden_dims=(128,), seed=0)
    bayesvae.fit(cvae, (digits.x, digits.y), epochs=60, batch_size=64, lr=3e-3, progress=False)
    agree = []
    for label in range(10):
        images = cvae.sample(50, y=label, seed=label).numpy()
        agree.append(classifier.predict(images) == label)
    share = float(np.mean(agree))
    assert share >= 0.8, f"only {share:.0%} of generated digits are classified as asked"
    # one-hot labels and per-row labels are accepted and equivalent to integers
    one_hot = np.eye(10)[[3] * 5]
    torch.testing.assert_close(cvae.sample(5, y=one_hot, seed=1), cvae.sample(5, y=3, seed=1))


def test_conditional_vae_runs_in_a_plain_pyro_svi_loop(digits):
    cvae = ConditionalVAE(64, num_classes=10, latent_dim=2, hidden_dims=(32,), seed=0)
    x, y = cvae.check_data(digits.x[:256], digits.y[:256])
    svi = SVI(cvae.model, cvae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(x, y) for _ in range(100)]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 5 * 256
    assert cvae.log_likelihood(x[:5], y[:5].argmax(1), num_samples=20).shape == (5,)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.zeros(9, dtype=int), "9 labels for 10 data rows"),
        (np.full(10, 10), r"must lie in \[0, 9\]"),
        (np.full(10, -1), r"must lie in \[0, 9\]"),
        (np.full(10, 1.5), "whole-number"),
        (np.zeros((10, 3)), "10 columns"),
        (np.ones((10, 10)), "one-hot"),
        (np.array(["a"] * 10), "integer labels"),
    ],
)
def test_bad_labels_are_refused_before_training(labels, message):
    cvae = ConditionalVAE(8, num_classes=10, latent_dim=2, hidden_dims=(4,))
    x = np.zeros((10, 8), dtype=np.float32)
    with pytest.raises((ValueError, TypeError), match=message):
        bayesvae.fit(cvae, (x, labels), epochs=1, progress=False)


def test_conditional_and_unconditional_queries_refuse_the_wrong_labels():
    cvae = ConditionalVAE(8, num_classes=3, latent_dim=2, hidden_dims=(4,))
    with pytest.raises(ValueError, match="needs labels y"):
        cvae.sample(4)
    with pytest.raises(ValueError, match="needs data \\(x, y\\)"):
        bayesvae.fit(cvae, np.zeros((4, 8), dtype=np.float32), epochs=1, progress=False)
    with pytest.raises(ValueError, match="unconditional"):
        VAE(8, latent_dim=2, hidden_dims=(4,)).sample(3, y=1)
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        ConditionalVAE(8, num_classes=1)


# ----------------------------------------------------------------- importance weighting
def test_iwae_objective_equals_renyi_alpha_zero_on_a_full_batch():
    vae = VAE(16, latent_dim=3, hidden_dims=(8,), seed=0)
    x = torch.rand(12, 16).round()
    for k in (1, 5):
        pyro.set_rng_seed(1)
        ours = ImportanceWeightedELBO(k, max_plate_nesting=1).loss(vae.model, vae.guide, x)
        pyro.set_rng_seed(1)
        renyi = RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True, max_plate_nesting=1)
        assert ours == pytest.approx(renyi.loss(vae.model, vae.guide, x), rel=1e-5)


def test_iwae_scales_a_minibatch_after_the_logsumexp():
    vae = VAE(16, latent_dim=3, hidden_dims=(8,), seed=0)
    x = torch.rand(12, 16).round()
    objective = ImportanceWeightedELBO(5, max_plate_nesting=1)
    pyro.set_rng_seed(2)
    full = objective.loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(2)
    scaled = objective.loss(vae.model, vae.guide, x, num_data=120)
    assert scaled == pytest.approx(10 * full, rel=1e-5)


def test_iwae_bound_is_above_the_elbo_and_rises_with_k(digits):
    vae = VAE(64, latent_dim=4, hidden_dims=(64,), seed=0)
    bayesvae.fit(vae, digits.x, epochs=10, batch_size=64, progress=False)
    x = torch.as_tensor(digits.x[:300])
    bounds = {}
    for k in (1, 5, 50):
        objective = make_elbo("iwae", num_particles=k, max_plate_nesting=1)
        pyro.set_rng_seed(0)
        losses = [objective.loss(vae.model, vae.guide, x) for _ in range(20)]
        bounds[k] = -np.mean(losses) / len(x)
    elbo = float(vae.elbo(x, num_samples=20, seed=0).mean())
    assert bounds[1] == pytest.approx(elbo, abs=0.1)
    assert bounds[1] < bounds[5] < bounds[50], bounds
    assert bounds[50] - bounds[1] > 0.05


@pytest.mark.parametrize("name", ["vae", "cvae", "hvae", "iaf", "spline", "gumbel"])
def test_every_vae_trains_with_the_iwae_objective(name, digits):
    model = small_models()[name]
    data = data_for(model, digits, 512)
    result = bayesvae.fit(
        model, data, epochs=6, batch_size=64, elbo="iwae", num_particles=3, progress=False
    )
    history = result.history
    assert history["train_elbo"].iloc[-1] > history["train_elbo"].iloc[0]
    assert result.settings["elbo"] == "iwae" and result.settings["num_particles"] == 3


@pytest.mark.parametrize("bad", [0, -2])
def test_iwae_needs_at_least_one_particle(bad):
    with pytest.raises(ValueError, match="num_particles"):
        bayesvae.fit(
            VAE(4, latent_dim=2, hidden_dims=(3,)),
            np.zeros((8, 4), np.float32),
            elbo="iwae",
            num_particles=bad,
            progress=False,
        )


# ----------------------------------------------------------------------- hierarchical VAE
def test_hierarchical_vae_reports_both_kl_terms(digits):
    hvae = HierarchicalVAE(64, latent_dim=8, top_latent_dim=4, hidden_dims=(64,), seed=0)
    result = bayesvae.fit(
        hvae, digits.x[:1500], val=digits.x[1500:], epochs=30, batch_size=64, progress=False
    )
    last = result.history.iloc[-1]
    assert last["kl_z1"] > 0 and last["kl_z2"] > 0
    assert last["kl"] == pytest.approx(last["kl_z1"] + last["kl_z2"], rel=1e-5)
    terms = hvae.kl_per_layer(digits.x[1500:], num_samples=20, seed=0)
    assert terms["z1"] > 0 and terms["z2"] > 0
    elbo = float(hvae.elbo(digits.x[1500:], num_samples=20, seed=0).mean())
    assert terms["recon"] - terms["z1"] - terms["z2"] == pytest.approx(elbo, abs=0.3)
    assert hvae.sample(6, seed=0).shape == (6, 64)
    with pytest.raises(ValueError, match="no flows"):
        HierarchicalVAE(64, flows=1)


# ------------------------------------------------------------------------------ flow guides
@pytest.mark.parametrize("flow_type", ["iaf", "spline"])
def test_flow_guide_density_is_the_change_of_variables(flow_type):
    vae = VAE(10, latent_dim=3, hidden_dims=(6,), flows=2, flow_type=flow_type, seed=0)
    for parameter in vae.flows.parameters():  # move away from the near-identity initialisation
        torch.nn.init.normal_(parameter, std=0.3)
    x = torch.rand(7, 10)
    q = vae.posterior(x)
    assert isinstance(q, pyro.distributions.TransformedDistribution)
    features = vae.encoder.features(x)
    loc, scale = vae.encoder.params_from(features)
    base = pyro.distributions.Normal(loc, scale).to_event(1)
    z0 = base.sample((4,))
    z, log_det = z0, torch.zeros(4, 7)
    for flow in vae.flows:
        transform = flow.condition(features)
        z_next = transform(z)
        log_det = log_det + transform.log_abs_det_jacobian(z, z_next)
        z = z_next
    expected = base.log_prob(z0) - log_det
    # the inverse is computed (a fresh tensor misses the transforms' caches)
    torch.testing.assert_close(q.log_prob(z.clone()), expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(expected, base.log_prob(z), atol=1e-3)  # the flows do something


def test_flows_improve_nothing_they_should_not_break(digits):
    vae = VAE(64, latent_dim=4, hidden_dims=(64,), flows=2, seed=0)
    result = bayesvae.fit(vae, digits.x, epochs=8, batch_size=64, progress=False)
    assert result.history["train_elbo"].is_monotonic_increasing or (
        result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0] + 2
    )
    ll = vae.log_likelihood(digits.x[:50], num_samples=50, seed=0)
    assert torch.isfinite(ll).all()
    splines = VAE(64, latent_dim=4, hidden_dims=(64,), flows=1, flow_type="spline", seed=0)
    with pytest.raises(ValueError, match="IAF flow guides on MLP encoders only"):
        bayesvae.fit(splines, digits.x, backend="numpyro", progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(flows=-1), "flows must be an integer >= 0"),
        (dict(flows=1.5), "flows must be an integer >= 0"),
        (dict(flows=1, flow_type="planar"), "flow_type"),
    ],
)
def test_bad_flow_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(8, **kwargs)


# -------------------------------------------------------------------------- Gumbel-softmax
def test_gumbel_softmax_vae_anneals_its_temperature_and_generates(digits):
    model = GumbelSoftmaxVAE(
        64, num_variables=6, categories=4, hidden_dims=(64,), anneal_rate=1e-3, seed=0
    )
    assert model.temperature == 1.0
    result = bayesvae.fit(model, digits.x, epochs=15, batch_size=64, progress=False)
    steps = 15 * (len(digits.x) // 64)
    assert model.anneal_step.item() == pytest.approx(steps, abs=2)  # +1: the checked first pass
    assert model.temperature == pytest.approx(max(0.5, math.exp(-1e-3 * steps)), rel=1e-2)
    assert result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0] + 1
    probs = model.encode(digits.x[:5])
    assert probs.shape == (5, 6, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 6))
    assert model.sample(3, seed=0).shape == (3, 64)
    assert model.reconstruct(digits.x[:3]).shape == (3, 64)
    one_hot = torch.nn.functional.one_hot(torch.zeros(2, 6, dtype=torch.long), 4).float()
    assert model.decode(one_hot).shape == (2, 64)
    with pytest.raises(ValueError, match="one-hot"):
        model.decode(torch.zeros(2, 5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0.0), "temperature must be a finite number > 0"),
        (dict(temperature=-1.0), "temperature must be a finite number > 0"),
        (dict(min_temperature=0.0), "min_temperature must be a finite number > 0"),
        (dict(temperature=0.4, min_temperature=0.5), "must not exceed"),
        (dict(anneal_rate=-1.0), "anneal_rate"),
        (dict(categories=1), "categories must be at least 2"),
        (dict(latent_dim=4), "do not pass latent_dim"),
    ],
)
def test_bad_gumbel_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GumbelSoftmaxVAE(8, **kwargs)


# --------------------------------------------------------------------------- save and load
@pytest.mark.parametrize("name", ["cvae", "hvae", "iaf", "spline", "gumbel", "mixture"])
def test_variants_save_and_load_to_identical_outputs(name, digits, tmp_path):
    model = small_models()[name]
    data = data_for(model, digits, 256)
    result = bayesvae.fit(model, data, epochs=2, batch_size=64, progress=False)
    result.save(tmp_path / "run")
    loaded = bayesvae.load(tmp_path / "run")
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.as_tensor(digits.x[:20])
    y = torch.as_tensor(digits.y[:20]) if name == "cvae" else None
    torch.testing.assert_close(loaded.reconstruct(x, y), model.reconstruct(x, y))
    torch.testing.assert_close(
        loaded.sample(4, 1 if name == "cvae" else None, seed=0),
        model.sample(4, 1 if name == "cvae" else None, seed=0),
    )
    if name == "gumbel":
        assert loaded.temperature == model.temperature


@pytest.mark.parametrize("name", ["cvae", "gumbel", "mixture"])  # hvae has one (backends tests)
def test_variants_without_a_numpyro_twin_refuse_that_backend(name, digits):
    model = small_models()[name]
    with pytest.raises(ValueError, match="no NumPyro twin"):
        bayesvae.fit(model, data_for(model, digits, 64), backend="numpyro", progress=False)


# ------------------------------------------------------------------ Gaussian-mixture prior
def test_enumerating_the_component_gives_the_exact_mixture_prior():
    model = MixturePriorVAE(12, components=4, latent_dim=3, hidden_dims=(8,), seed=0)
    x = torch.rand(9, 12).round()
    guide_trace = pyro.poutine.trace(model.guide).get_trace(x)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(
        model.model, pyro.poutine.replay(model.guide, trace=guide_trace), x
    )
    z = guide_trace.nodes["z"]["value"]
    q = model.posterior(x)
    manual = (
        model.observation_dist(model.decoder(z)).log_prob(x)
        + model.prior((9,), x.device).log_prob(z)  # log sum_c pi_c N(z; mu_c, sigma_c)
        - q.log_prob(z)
    ).sum()
    assert loss == pytest.approx(-float(manual.detach()), rel=1e-5)


def test_mixture_prior_vae_clusters_and_generates(digits):
    from sklearn.metrics import adjusted_rand_score

    model = MixturePriorVAE(64, components=10, latent_dim=4, hidden_dims=(64,), seed=0)
    result = bayesvae.fit(model, digits.x, epochs=20, batch_size=64, lr=3e-3, progress=False)
    assert result.settings["elbo"] == "enum"  # the family's default objective
    assert result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0] + 5
    proba = model.cluster_proba(digits.x)
    assert proba.shape == (1797, 10)
    torch.testing.assert_close(proba.sum(1), torch.ones(1797))
    assert adjusted_rand_score(digits.y, proba.argmax(1).numpy()) > 0.2
    assert model.sample(5, seed=0).shape == (5, 64)
    for objective in ("iwae", "trace"):
        with pytest.raises(ValueError, match="needs elbo in \\['enum'\\]"):
            bayesvae.fit(model, digits.x, elbo=objective, num_particles=2, progress=False)
    with pytest.raises(ValueError, match="components must be at least 2"):
        MixturePriorVAE(64, components=1)
