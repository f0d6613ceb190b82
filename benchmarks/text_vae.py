"""The sentence VAE on sentences of the raw 20 Newsgroups, beside a language model of the same size.

    python benchmarks/text_vae.py                       # the issue's protocol (hours on a CPU)
    python benchmarks/text_vae.py --train-sentences 10000 --epochs 3 --latent-dim 16 \\
        --embedding-dim 128 --hidden 256 --eval-sentences 200 --is-samples 100 \\
        --free-bits 0.1                                 # the budget-limited run in RESULTS.md
    python benchmarks/text_vae.py --quick               # a smoke run (tiny; writes nothing)

Data (``bayesvae.data.sentences.load_20news_sentences``): the bydate messages with headers,
quoted replies and signatures stripped as scikit-learn's ``remove=(...)`` does, split into
sentences of 5-40 tokens; train from the training messages, valid/test from the test messages
(alternating in sorted file order); the vocabulary is the 10,000 most frequent training tokens
(specials included). ``--train-sentences`` takes a seeded subset of the training sentences.

Models, the same size: the sentence VAE (``SentenceVAE``: LSTM encoder and decoder, word dropout,
KL warm-up) and an LSTM language model (the VAE's decoder without ``z``), both Adam, same epochs,
batch and learning rate. Test: a fixed, seeded subset of ``--eval-sentences`` test sentences
(1,000 by default); the VAE's NLL by importance sampling with ``--is-samples`` draws (500), the
LM's exactly; perplexity per word (``<eos>`` counted) and the VAE's KL term. Targets: the VAE
within 3 nats per sentence of the LM, with KL >= 1 nat (no collapse). Anchor: Bowman et al.
(2016) on the Penn Treebank: VAE NLL 101 (KL 2) against the LM's 100.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from vae_mnist import machine, write_results

import bayesvae
from bayesvae.data.sentences import Vocabulary, load_20news_sentences
from bayesvae.models import SentenceVAE

HERE = Path(__file__).resolve().parent
MAX_GAP_NATS, MIN_KL = 3.0, 1.0


class LanguageModel(nn.Module):
    """The sentence VAE's decoder without ``z``: embedding, RNN, softmax over the vocabulary."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, rnn: str) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.rnn = (nn.GRU if rnn == "gru" else nn.LSTM)(
            embedding_dim, hidden_dim, batch_first=True
        )
        self.output = nn.Linear(hidden_dim, vocab_size)

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """``log p(w)`` per sentence of ``ids: (B, T)`` (``<bos> ... <eos>``, 0-padded)."""
        lengths = (ids != 0).sum(-1)
        ids = ids[:, : int(lengths.max())]
        packed = pack_padded_sequence(
            self.embedding(ids[:, :-1]), (lengths - 1).cpu(), batch_first=True,
            enforce_sorted=False,
        )  # fmt: skip
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1] - 1)
        log_probs = torch.log_softmax(self.output(out), -1)
        targets = ids[:, 1:]
        picked = log_probs.gather(-1, targets[..., None]).squeeze(-1)
        return (picked * (targets != 0)).sum(-1)


def train_lm(lm: LanguageModel, ids: np.ndarray, *, epochs: int, batch_size: int, lr: float,
             seed: int) -> float:  # fmt: skip
    """Adam on the mean NLL per sentence; returns the seconds taken."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(lm.parameters(), lr=lr)
    data = torch.as_tensor(ids)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data) - batch_size + 1, batch_size):
            loss = -lm.log_prob(data[order[start : start + batch_size]]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--train-sentences", type=int, help="seeded subset (default: all)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--rnn", default="lstm", choices=("gru", "lstm"))
    parser.add_argument("--word-dropout", type=float, default=0.3)
    parser.add_argument("--kl-warmup", type=int, default=3, help="epochs of KL annealing")
    parser.add_argument("--free-bits", type=float, default=0.0)
    parser.add_argument("--eval-sentences", type=int, default=1000)
    parser.add_argument("--is-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    root = args.data_root / "20news_raw"
    if not (root / "20news-bydate.tar.gz").is_file():
        print(f"skipped: 20 Newsgroups not found under {root}", file=sys.stderr)
        return 0
    if args.quick:
        args.train_sentences, args.epochs, args.eval_sentences, args.is_samples = 500, 1, 20, 5
        args.hidden, args.embedding_dim, args.latent_dim = 32, 16, 4
    splits = load_20news_sentences(root)
    rng = np.random.default_rng(args.seed)
    train = splits["train"]
    if args.train_sentences is not None and args.train_sentences < len(train):
        train = [train[i] for i in rng.choice(len(train), args.train_sentences, replace=False)]
    vocabulary = Vocabulary.build(splits["train"], max_size=10000)
    test_rows = np.random.default_rng(args.seed).permutation(len(splits["test"]))
    test = [" ".join(splits["test"][i]) for i in test_rows[: args.eval_sentences]]
    valid = vocabulary.encode(splits["valid"][:2000])
    ids = vocabulary.encode(train)

    vae = SentenceVAE(
        vocabulary, latent_dim=args.latent_dim, embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden, rnn=args.rnn, word_dropout=args.word_dropout,
        free_bits=args.free_bits, seed=args.seed,
    )  # fmt: skip
    result = bayesvae.fit(
        vae, ids, val=valid, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        kl_warmup=args.kl_warmup, seed=args.seed, progress=False,
    )  # fmt: skip
    vae_seconds = float(result.history["seconds"].sum())
    vae.eval()
    figures = vae.perplexity(test, num_samples=args.is_samples, seed=args.seed)
    kl = float(vae.kl(test).mean())

    lm = LanguageModel(len(vocabulary), args.embedding_dim, args.hidden, args.rnn)
    lm_seconds = train_lm(lm, ids, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          seed=args.seed)  # fmt: skip
    lm.eval()
    with torch.no_grad():
        test_ids = torch.as_tensor(vocabulary.encode(test))
        lm_nll = float(-torch.cat([lm.log_prob(test_ids[i : i + 200])
                                   for i in range(0, len(test_ids), 200)]).mean())  # fmt: skip
    words = figures["words"]
    row = {
        "train_sentences": len(train),
        "vocab": len(vocabulary),
        "epochs": args.epochs,
        "vae_nll": figures["nll"],
        "vae_ppl": figures["ppl_word"],
        "kl": kl,
        "lm_nll": lm_nll,
        "lm_ppl": math.exp(lm_nll * len(test) / words),
        "vae_minutes": vae_seconds / 60,
        "lm_minutes": lm_seconds / 60,
        "samples": vae.sample(5, seed=args.seed),
        "homotopy": vae.interpolate(test[0], test[1], steps=5),
    }
    print(json.dumps(row, indent=1))
    if args.quick:
        return 0
    gap = row["vae_nll"] - row["lm_nll"]
    met = gap <= MAX_GAP_NATS and kl >= MIN_KL
    full = (args.train_sentences is None and args.eval_sentences >= 1000
            and args.is_samples >= 500)  # fmt: skip
    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        f"20 Newsgroups sentences of 5-40 tokens (headers, quotes and signatures stripped): "
        f"{row['train_sentences']} training sentences"
        + ("" if args.train_sentences is None else " (a seeded subset)")
        + f", vocabulary {row['vocab']}; test: {len(test)} test sentences (seeded subset), "
        f"NLL by importance sampling with K={args.is_samples}. Both models: {args.rnn.upper()} "
        f"{args.hidden} units, embeddings {args.embedding_dim}, Adam {args.lr}, batch "
        f"{args.batch_size}, {args.epochs} epochs; the VAE with latent {args.latent_dim}, word "
        f"dropout {args.word_dropout}, KL warm-up {args.kl_warmup} epochs"
        + (f", free bits {args.free_bits}" if args.free_bits else "")
        + ".",
        "",
        "| model | test NLL (nats/sentence) | perplexity (per word) | KL (nats) | train minutes |",
        "|---|---|---|---|---|",
        f"| sentence VAE | {row['vae_nll']:.2f} | {row['vae_ppl']:.1f} | {kl:.2f} | "
        f"{row['vae_minutes']:.1f} |",
        f"| LSTM language model | {row['lm_nll']:.2f} | {row['lm_ppl']:.1f} | | "
        f"{row['lm_minutes']:.1f} |",
        "",
        f"VAE - LM: {gap:+.2f} nats per sentence; KL {kl:.2f} nats "
        + ("(collapsed: about 0)." if kl < 0.1 else "(not collapsed)."),
        f"Target: within {MAX_GAP_NATS:g} nats of the LM with KL >= {MIN_KL:g}: "
        + ("met" if met else "MISSED")
        + ("." if full else " (on a budget-limited run, not the full protocol)."),
        "",
        "Samples: " + " | ".join(row["samples"]),
        "",
        "Homotopy between two test sentences: " + " -> ".join(row["homotopy"]),
    ]
    write_results(args.results, "Sentence VAE on 20 Newsgroups (CPU)", "\n".join(lines))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
