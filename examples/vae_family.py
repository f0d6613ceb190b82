"""The VAE family on the bundled 8x8 digits: a conditional VAE that draws chosen digits, its
latent-space figures, a hierarchical VAE trained with the importance-weighted bound, an IAF
guide, and the test log-likelihood of each.

    python examples/vae_family.py --epochs 100 --out runs/example-family
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import bayesvae
from bayesvae import latent
from bayesvae.report import plots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/example-family"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    data = bayesvae.data.load_digits()
    order = np.random.default_rng(args.seed).permutation(len(data.x))
    train, test = order[:1500], order[1500:]
    x_train, y_train, x_test, y_test = (
        data.x[train], data.y[train], data.x[test], data.y[test]
    )  # fmt: skip
    shape = data.image_shape
    options = dict(epochs=args.epochs, batch_size=64, lr=1e-3, seed=args.seed, progress=False)

    # 1. A conditional VAE: one row of generated digits per class.
    cvae = bayesvae.ConditionalVAE(64, num_classes=10, latent_dim=2, hidden_dims=(256,))
    bayesvae.fit(cvae, (x_train, y_train), val=(x_test, y_test), **options)
    labels = np.repeat(np.arange(10), 10)
    plots.image_grid(cvae.sample(100, labels, seed=args.seed), shape, args.out / "cvae.png")
    grid = latent.manifold_grid(cvae, n=15, y=3)  # the manifold of the digit 3
    plots.manifold(grid, shape, args.out / "manifold_3.png", title="CVAE manifold, class 3")
    path = latent.interpolate(cvae, x_test[0], x_test[1], steps=10, method="spherical", y=3)
    plots.interpolation(path, shape, args.out / "interpolation_3.png")

    # 2. Three unconditional variants with the same networks and epochs.
    models = {
        "plain VAE": (bayesvae.VAE(64, latent_dim=8, hidden_dims=(256,)), {}),
        "IWAE (K=5)": (
            bayesvae.VAE(64, latent_dim=8, hidden_dims=(256,)),
            dict(elbo="iwae", num_particles=5),
        ),
        "IAF guide": (bayesvae.VAE(64, latent_dim=8, hidden_dims=(256,), flows=2), {}),
        "hierarchical": (
            bayesvae.HierarchicalVAE(64, latent_dim=8, top_latent_dim=4, hidden_dims=(256,)),
            {},
        ),
    }
    for name, (model, extra) in models.items():
        result = bayesvae.fit(model, x_train, val=x_test, **options, **extra)
        log_px = model.log_likelihood(x_test, num_samples=500, seed=args.seed).mean()
        line = f"{name:>13}: test log p(x) {float(log_px):8.3f} nats"
        if "kl_z2" in result.history:
            last = result.history.iloc[-1]
            line += f"  (KL z1 {last['kl_z1']:.2f}, z2 {last['kl_z2']:.2f})"
        print(line)
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
