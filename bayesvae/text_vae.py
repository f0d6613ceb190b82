"""The sentence-VAE workflow behind ``bayesvae text-vae``: a corpus -> sentences -> vocabulary ->
a fitted :class:`~bayesvae.models.SentenceVAE`, with held-out figures (importance-sampled NLL and
perplexity, the KL term, a collapse check), samples, reconstructions and the paper's homotopy,
saved as a run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesvae.data.sentences import Vocabulary, sentences_from_text
from bayesvae.data.text import read_documents
from bayesvae.data.validation import check_positive_int, check_probability
from bayesvae.runs import RunWriter

__all__ = ["TextVAERun", "fit_text_vae", "COLLAPSED_KL"]

#: mean KL (nats per sentence) below which the posterior counts as collapsed
COLLAPSED_KL = 0.1


@dataclass
class TextVAERun:
    """What :func:`fit_text_vae` returns: the fitted model, its history, and held-out figures
    on ``num_eval`` validation sentences (``nll`` nats per sentence by importance sampling with
    ``num_samples`` draws, ``ppl_word``, ``ppl_sentence``, ``kl`` mean nats per sentence)."""

    model: Any
    history: Any
    figures: dict[str, Any]
    samples: list[str]
    reconstructions: list[tuple[str, str]]
    homotopy: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def collapsed(self) -> bool:
        """Whether the held-out KL is below :data:`COLLAPSED_KL` (the decoder ignores ``z``)."""
        return self.figures["kl"] < COLLAPSED_KL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "family": "SentenceVAE",
            "sentences": self.settings.get("num_train"),
            "vocab_size": len(self.model.vocabulary),
            "epochs": len(self.history),
            "seconds": float(self.history["seconds"].sum()),
            **self.figures,
            "collapsed": self.collapsed,
            "samples": self.samples,
            "homotopy": self.homotopy,
            "reconstructions": [list(pair) for pair in self.reconstructions],
        }

    def table(self) -> str:
        """The held-out figures, samples and homotopy as text."""
        f = self.figures
        lines = [
            f"SentenceVAE, {len(self.model.vocabulary)} words, {len(self.history)} epochs",
            f"held-out ({f['num_eval']} sentences, K={f['num_samples']}): NLL {f['nll']:.2f} "
            f"nats/sentence, perplexity {f['ppl_word']:.1f} per word, KL {f['kl']:.2f} nats",
        ]
        if self.collapsed:
            lines.append("warning: posterior collapse: the KL is about 0, z is ignored")
        lines += ["samples:", *(f"  {s}" for s in self.samples), "homotopy:"]
        lines += [f"  {s}" for s in self.homotopy]
        return "\n".join(lines)

    def save(self, out: str | Path | RunWriter) -> Path:
        """Write a run folder: the model (config.yaml with the vocabulary, model.pt,
        metrics.csv), ``result.json``, ``samples.txt`` and ``homotopy.txt``; replaced whole."""
        from bayesvae.runs import save_model, writing

        with writing(out) as run:
            save_model(self.model, run, history=self.history, fit_config=self.settings)
            run.write_json("result.json", self.to_dict())
            run.write_text("samples.txt", "\n".join(self.samples) + "\n")
            run.write_text("homotopy.txt", "\n".join(self.homotopy) + "\n")
        return run.path


def fit_text_vae(
    source: Any,
    *,
    column: str | None = None,
    min_tokens: int = 1,
    max_tokens: int = 40,
    vocab_size: int = 10000,
    min_count: int = 1,
    val_fraction: float = 0.1,
    latent_dim: int = 16,
    embedding_dim: int = 128,
    hidden_dim: int = 256,
    rnn: str = "gru",
    word_dropout: float = 0.25,
    free_bits: float = 0.0,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    kl_warmup: int = 5,
    num_samples: int = 100,
    num_eval: int = 500,
    seed: int = 0,
    progress: bool = True,
    device: str = "auto",
) -> TextVAERun:
    """Fit a sentence VAE to a corpus and measure it on held-out sentences.

    ``source``: texts (a list of strings, a ``.txt`` file with one document per line, a folder of
    ``.txt`` files or a CSV ``column``) split into sentences of ``min_tokens`` to ``max_tokens``
    tokens; the vocabulary is the ``vocab_size`` most frequent training tokens; a seeded
    ``val_fraction`` of the sentences is held out (at least one). The model options are
    :class:`~bayesvae.models.SentenceVAE`'s; training is ``bayesvae.fit`` with KL warm-up over
    ``kl_warmup`` epochs. Held-out figures use up to ``num_eval`` sentences and ``num_samples``
    importance samples each.
    """
    from bayesvae.infer.svi import fit
    from bayesvae.models.sentence_vae import SentenceVAE

    val_fraction = check_probability("val_fraction", val_fraction)
    min_tokens = check_positive_int("min_tokens", min_tokens)
    max_tokens = check_positive_int("max_tokens", max_tokens)
    if max_tokens < min_tokens:
        raise ValueError(f"max_tokens ({max_tokens}) must be at least min_tokens ({min_tokens}).")
    documents = read_documents(source, column=column)
    sentences = sentences_from_text(documents, min_tokens=min_tokens, max_tokens=max_tokens)
    if len(sentences) < 2:
        raise ValueError(
            f"the corpus has {len(sentences)} sentence(s) of {min_tokens}-{max_tokens} tokens; "
            "expected at least 2 (one to train on, one to hold out)."
        )
    order = np.random.default_rng(seed).permutation(len(sentences))
    held = max(1, int(round(val_fraction * len(sentences))))
    train = [sentences[i] for i in order[held:]]
    val = [sentences[i] for i in order[:held]]
    vocabulary = Vocabulary.build(train, max_size=vocab_size, min_count=min_count)
    model = SentenceVAE(
        vocabulary,
        latent_dim=latent_dim,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        rnn=rnn,
        word_dropout=word_dropout,
        free_bits=free_bits,
        seed=seed,
    )
    result = fit(
        model,
        vocabulary.encode(train),
        val=vocabulary.encode(val),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        kl_warmup=kl_warmup,
        seed=seed,
        progress=progress,
        device=device,
    )
    model = result.model.eval()
    eval_texts = [" ".join(s) for s in val[:num_eval]]
    figures = model.perplexity(eval_texts, num_samples=num_samples, seed=seed)
    figures.update(
        kl=float(model.kl(eval_texts).mean()), num_eval=len(eval_texts), num_samples=num_samples
    )
    shown = eval_texts[:5]
    homotopy = model.interpolate(shown[0], shown[-1], steps=5) if len(shown) > 1 else []
    return TextVAERun(
        model=model,
        history=result.history,
        figures=figures,
        samples=model.sample(10, seed=seed),
        reconstructions=list(zip(shown, model.reconstruct(shown), strict=True)),
        homotopy=homotopy,
        settings={**result.settings, "min_tokens": min_tokens, "max_tokens": max_tokens},
    )
