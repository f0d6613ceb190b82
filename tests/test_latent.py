"""Latent-space tools and their figures."""

import matplotlib.figure
import numpy as np
import pytest
import torch

from bayesvae import latent
from bayesvae.diagnostics import active_units, kl_per_dimension
from bayesvae.models import VAE, ConditionalVAE, GumbelSoftmaxVAE, HierarchicalVAE
from bayesvae.report import plots


@pytest.fixture
def vae():
    return VAE(64, latent_dim=3, hidden_dims=(16,), seed=0)


def test_manifold_grid_has_the_requested_shape_and_uses_the_inverse_normal_cdf(vae):
    grid = latent.manifold_grid(vae, n=7)
    assert grid.shape == (7, 7, 64)
    # the centre cell of an odd grid is z = 0 on both dimensions (others are 0 too)
    torch.testing.assert_close(grid[3, 3], vae.decode(torch.zeros(1, 3))[0])
    # corner: top-left is (z[0] low, z[1] high) at the cell centre 0.5 / n
    corner = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.5 / 7))
    expected = vae.decode(torch.tensor([[corner, -corner, 0.0]]))[0]
    torch.testing.assert_close(grid[0, 0], expected)
    assert latent.manifold_grid(vae, n=4, dims=(2, 0)).shape == (4, 4, 64)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(dims=(0, 0)), "two different"), (dict(dims=(0, 3)), r"in \[0, 2\]"), (dict(n=0), "n")],
)
def test_manifold_grid_refuses_bad_dimensions(vae, kwargs, message):
    with pytest.raises(ValueError, match=message):
        latent.manifold_grid(vae, **kwargs)


def test_interpolation_starts_and_ends_at_the_reconstructions(vae, digits):
    x = torch.as_tensor(digits.x[:2])
    for method in ("linear", "spherical"):
        path = latent.interpolate(vae, x[0], x[1], steps=6, method=method)
        assert path.shape == (6, 64)
        torch.testing.assert_close(path[[0, -1]], vae.reconstruct(x), atol=1e-5, rtol=1e-5)
    assert latent.interpolate(vae, x[:1], x[1:], steps=3).shape == (3, 64)


def test_slerp_keeps_the_norm_between_ends_of_equal_norm():
    start, end = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])
    path = latent.slerp(start, end, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 3.0))
    torch.testing.assert_close(path[2], torch.tensor([1.0, 1.0, 0.0]) * 3 / 2**0.5)
    parallel = latent.slerp(start, 2 * start, torch.linspace(0, 1, 3))  # falls back to linear
    torch.testing.assert_close(parallel[1], 1.5 * start)


@pytest.mark.parametrize(
    "a, b, kwargs, message",
    [
        (np.zeros(64), np.zeros(63), {}, "same shape"),
        (np.zeros((2, 64)), np.zeros((2, 64)), {}, "one input"),
        (np.zeros(64), np.zeros(64), dict(steps=1), "at least 2"),
        (np.zeros(64), np.zeros(64), dict(method="cubic"), "method"),
    ],
)
def test_interpolation_refuses_bad_inputs(vae, a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        latent.interpolate(vae, a, b, **kwargs)


def test_traversals_vary_one_dimension_per_row(vae, digits):
    images = latent.traversals(vae, x=digits.x[0], dims=[0, 2], values=[-2.0, 0.0, 2.0])
    assert images.shape == (2, 3, 64)
    centre = vae.encode(digits.x[:1])[0][0]
    torch.testing.assert_close(
        images[0, 1], vae.decode(centre.clone().index_fill(0, torch.tensor([0]), 0.0)[None])[0]
    )
    assert not torch.allclose(images[0, 0], images[0, 2])
    assert latent.traversals(vae).shape == (3, 9, 64)
    with pytest.raises(ValueError, match="dims"):
        latent.traversals(vae, dims=[5])
    with pytest.raises(ValueError, match="one input"):
        latent.traversals(vae, x=np.zeros(10))


def test_conditional_and_hierarchical_models_have_the_tools(digits):
    cvae = ConditionalVAE(64, num_classes=10, latent_dim=2, hidden_dims=(16,), seed=0)
    assert latent.manifold_grid(cvae, n=3, y=4).shape == (3, 3, 64)
    assert latent.interpolate(cvae, digits.x[0], digits.x[1], steps=4, y=0).shape == (4, 64)
    assert latent.traversals(cvae, x=digits.x[0], y=0).shape == (2, 9, 64)
    with pytest.raises(ValueError, match="needs labels"):
        latent.manifold_grid(cvae, n=3)
    count, variances = active_units(cvae, digits.x[:50], digits.y[:50])
    assert variances.shape == (2,) and 0 <= count <= 2
    assert kl_per_dimension(cvae, digits.x[:50], digits.y[:50]).shape == (2,)
    hvae = HierarchicalVAE(64, latent_dim=3, top_latent_dim=2, hidden_dims=(16,), seed=0)
    assert latent.manifold_grid(hvae, n=2).shape == (2, 2, 64)


def test_discrete_latents_are_refused_by_the_gaussian_tools():
    model = GumbelSoftmaxVAE(16, num_variables=2, categories=3, hidden_dims=(8,))
    with pytest.raises(TypeError, match="Gaussian latent"):
        latent.manifold_grid(model)
    with pytest.raises(TypeError, match="Gaussian latent"):
        latent.interpolate(model, np.zeros(16), np.zeros(16))


def test_latent_figures_are_written_and_returned(vae, digits, tmp_path):
    shape = digits.image_shape
    x = torch.as_tensor(digits.x[:2])
    figures = {
        "manifold.png": plots.manifold(
            latent.manifold_grid(vae, n=5), shape, tmp_path / "manifold.png"
        ),
        "interpolation.png": plots.interpolation(
            latent.interpolate(vae, x[0], x[1], steps=5), shape, tmp_path / "interpolation.png"
        ),
        "traversals.png": plots.traversals(
            latent.traversals(vae, dims=[0, 1]), shape, tmp_path / "traversals.png"
        ),
    }
    loc, _ = vae.encode(digits.x[:120])
    for method in ("auto", "pca", "tsne"):
        name = f"scatter_{method}.png"
        figures[name] = plots.latent_scatter(loc, digits.y[:120], tmp_path / name, method=method)
    for name, figure in figures.items():
        assert isinstance(figure, matplotlib.figure.Figure)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="method"):
        plots.latent_scatter(loc, method="umap")
