"""Heuristic losses as ``pyro.factor`` terms in a family's model (docs/vae_family.md): the term
enters the fit loop's objective exactly, with the minibatch scale, and it is what trains a head."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import bayesvae
from bayesvae.infer.objectives import make_elbo


class HeadVAE(bayesvae.VAE):
    """A VAE whose latent predicts a label through ``weight * log p(y | z)`` (a factor)."""

    def __init__(self, input_dim, *, num_classes=2, weight=1.0, **options):
        super().__init__(input_dim, **options)
        self.head = torch.nn.Linear(self.latent_dim, num_classes)
        self.weight = weight
        self.config.update(num_classes=num_classes, weight=weight)

    def model(self, x, y, *, num_data=None):
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        pyro.module(f"{self.pyro_name}.head", self.head)
        with self.data_plate(x, num_data):
            z = pyro.sample("z", self.prior((x.shape[0],), x.device))
            pyro.sample("x", self.observation_dist(self.decoder(z)), obs=x)
            if self.weight:
                log_p = dist.Categorical(logits=self.head(z)).log_prob(y)
                pyro.factor("label", self.weight * log_p)

    def guide(self, x, y, *, num_data=None):
        return super().guide(x, num_data=num_data)

    def check_data(self, x, y):
        (x,) = super().check_data(x)
        return x, torch.as_tensor(np.asarray(y), dtype=torch.int64)


def test_a_factor_adds_its_scaled_value_to_the_objective():
    model = HeadVAE(16, weight=3.0, latent_dim=2, hidden_dims=(8,), seed=0)
    x, y = torch.rand(8, 16).round(), torch.tensor([0, 1] * 4)
    objective = make_elbo("trace", max_plate_nesting=1)
    pyro.set_rng_seed(0)
    with_term = objective.loss(model.model, model.guide, x, y, num_data=80)
    pyro.set_rng_seed(0)
    trace = pyro.poutine.trace(model.guide).get_trace(x, y, num_data=80)
    replayed = pyro.poutine.trace(pyro.poutine.replay(model.model, trace)).get_trace(
        x, y, num_data=80
    )
    log_p = dist.Categorical(logits=model.head(trace.nodes["z"]["value"])).log_prob(y)
    model.weight = 0.0
    pyro.set_rng_seed(0)
    without = objective.loss(model.model, model.guide, x, y, num_data=80)
    # the term is -loss: 3 * log p(y | z) per row, scaled by N / B = 10
    assert with_term - without == pytest.approx(-10 * 3.0 * float(log_p.sum().detach()), rel=1e-4)
    assert replayed.nodes["label"]["scale"] == pytest.approx(10.0)


def test_the_factor_is_what_trains_the_head(digits):
    rare = (digits.y == 0).astype(int)
    scores = {}
    for weight in (0.0, 10.0):
        model = HeadVAE(64, weight=weight, latent_dim=4, hidden_dims=(64,), seed=0)
        bayesvae.fit(
            model, (digits.x[:1500], rare[:1500]), epochs=8, batch_size=64, lr=3e-3,
            progress=False,
        )  # fmt: skip
        with torch.no_grad():
            loc, _ = model.encode(digits.x[1500:])
            predicted = model.head(loc).argmax(-1).numpy()
        recalls = [float((predicted[rare[1500:] == c] == c).mean()) for c in (0, 1)]
        scores[weight] = np.mean(recalls)  # balanced accuracy: 0.5 for a constant guess
    assert scores[10.0] > 0.85 and scores[10.0] > scores[0.0] + 0.2, scores
