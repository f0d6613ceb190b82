"""The model contract: hooks declared once with their defaults; user subclasses never replace a
built-in family in the load registry; a plain module with model/guide is a program."""

import pyro
import pyro.distributions as dist
import torch

import bayesvae
from bayesvae.models import MODEL_REGISTRY, VAE
from bayesvae.models.contract import ModelContract, PyroProgramLike
from bayesvae.models.program import PyroProgram, as_model


def test_every_hook_has_a_default_in_one_place():
    contract = ModelContract()
    assert contract.family is None and contract.takes_num_data
    assert contract.default_elbo == "trace" and contract.supported_elbos is None
    assert contract.max_plate_nesting is None and contract.local_plate is None
    assert not contract.continuous_latent and contract.nuts_target_accept_prob == 0.8
    assert contract.guide_has_density and not contract.nuts_float64
    assert contract.nuts_init_values() is None and contract.arviz_dims() == ({}, {})
    assert contract.postprocess_posterior("idata") == "idata"
    # the families override only what they need, and satisfy the required protocol
    assert VAE.continuous_latent and VAE.local_plate == "data"
    assert isinstance(VAE(8, latent_dim=2, hidden_dims=(4,)), PyroProgramLike)


def test_a_user_subclass_named_vae_does_not_replace_the_built_in():
    class VAE(bayesvae.VAE):  # noqa: N801 (a user reusing the name)
        pass

    assert MODEL_REGISTRY["VAE"] is bayesvae.VAE
    assert MODEL_REGISTRY[VAE.family] is VAE and VAE.family.endswith("VAE") and "." in VAE.family


def test_modules_and_functions_become_programs():
    class Module(torch.nn.Module):
        def model(self, y):
            with pyro.plate("data", len(y)):
                pyro.sample("y", dist.Normal(pyro.sample("m", dist.Normal(0, 1)), 1.0), obs=y)

        def guide(self, y):
            pyro.sample("m", dist.Normal(pyro.param("m_loc", torch.tensor(0.0)), 1.0))

    module = Module()
    wrapped = as_model(module)
    assert isinstance(wrapped, PyroProgram) and wrapped.user_module is module
    assert isinstance(as_model(Module().model, guide="delta"), PyroProgram)
    vae = VAE(8, latent_dim=2, hidden_dims=(4,))
    assert as_model(vae) is vae


def test_numpyro_twins_are_found_by_family():
    from bayesvae.backends.numpyro import nuts_model, svi_twin

    assert svi_twin(VAE(8, latent_dim=2, hidden_dims=(4,))) is not None
    assert svi_twin(bayesvae.ConditionalVAE(8, num_classes=3, latent_dim=2)) is None
    assert nuts_model(bayesvae.models.BetaBinomialABTest(["A", "B"])) is not None
    assert nuts_model(VAE(8, latent_dim=2, hidden_dims=(4,))) is None
