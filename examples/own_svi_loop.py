"""bayesvae models are plain Pyro: fit a VAE with your own SVI loop, no bayesvae.fit involved.

python examples/own_svi_loop.py --steps 2000
"""

from __future__ import annotations

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

import bayesvae


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)

    pyro.set_rng_seed(0)
    x = torch.as_tensor(bayesvae.data.load_digits().x)
    vae = bayesvae.VAE(64, latent_dim=4, hidden_dims=(128,), seed=0)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), Trace_ELBO())
    for step in range(1, args.steps + 1):
        batch = x[torch.randint(len(x), (args.batch_size,))]
        loss = svi.step(batch, num_data=len(x))  # the plate scales the batch to the full set
        if step % max(args.steps // 5, 1) == 0 or step == args.steps:
            print(f"step {step}: ELBO per image {-loss / len(x):.2f} nats")
    print(f"final ELBO on all digits: {float(vae.elbo(x).mean()):.2f} nats per image")


if __name__ == "__main__":
    main()
