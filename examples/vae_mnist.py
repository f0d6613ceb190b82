"""VAE on MNIST read from its standard IDX files, dynamically binarized every epoch.

    python examples/vae_mnist.py --data-root ../shared/data/mnist --epochs 20

Without the files, pass --download (needs network) or use examples/vae_digits.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bayesvae


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None, help="use only this many images")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/example-mnist"))
    args = parser.parse_args(argv)
    try:
        train = bayesvae.data.load_mnist(args.data_root, split="train", download=args.download)
        test = bayesvae.data.load_mnist(args.data_root, split="test", binarize="threshold")
    except FileNotFoundError as error:
        print(f"skipped: {error}", file=sys.stderr)
        return 0
    if args.limit:
        from dataclasses import replace

        train = replace(train, x=train.x[: args.limit], y=train.y[: args.limit])
        test = replace(test, x=test.x[: args.limit], y=test.y[: args.limit])
    vae = bayesvae.VAE(784, latent_dim=20, hidden_dims=(400,), seed=0)
    result = bayesvae.fit(vae, train, val=test.x, epochs=args.epochs, batch_size=128, lr=1e-3)
    print(result.history[["epoch", "train_elbo", "val_elbo", "seconds"]].to_string(index=False))
    print(f"run folder: {result.save(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
