"""Train a VAE on the bundled 8x8 digits, report its test log-likelihood, save and reload it, and
write figures.

    python examples/vae_digits.py --epochs 100 --out runs/example-digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import bayesvae
from bayesvae.report import image_grid, latent_scatter, loss_curves


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/example-digits"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = bayesvae.data.load_digits()
    order = np.random.default_rng(args.seed).permutation(len(data.x))
    train, test = order[:1500], order[1500:]
    vae = bayesvae.VAE(64, latent_dim=args.latent_dim, hidden_dims=(256,), seed=args.seed)
    result = bayesvae.fit(
        vae,
        data.x[train],
        val=data.x[test],
        epochs=args.epochs,
        batch_size=64,
        lr=1e-3,
        seed=args.seed,
        early_stopping=20,
    )
    x_test = torch.as_tensor(data.x[test])
    log_px = vae.log_likelihood(x_test, num_samples=1000, seed=args.seed)
    print(
        f"epochs run: {len(result.history)}; test ELBO {float(vae.elbo(x_test).mean()):.2f}, "
        f"test log-likelihood (K=1000) {float(log_px.mean()):.2f} nats per image"
    )

    folder = result.save(args.out)
    reloaded = bayesvae.load(folder)
    assert torch.equal(reloaded.reconstruct(x_test[:5]), vae.reconstruct(x_test[:5]))
    loss_curves(result.history, folder / "loss_curves.png")
    image_grid(vae.sample(30, seed=args.seed), (1, 8, 8), folder / "samples.png")
    latent_scatter(vae.encode(x_test)[0], data.y[test], folder / "latent.png")
    print(f"run folder: {folder}")


if __name__ == "__main__":
    main()
