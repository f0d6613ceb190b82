"""Topic modelling end to end: raw text or a bag of words in, a fitted ProdLDA (Pyro or its
NumPyro twin) out, with top words, NPMI coherence, diversity and perplexity; a run folder.

>>> import bayesvae
>>> docs = ["cats purr and cats sleep", "dogs bark and dogs run"] * 20
>>> run = bayesvae.fit_topics(docs, num_topics=2, epochs=2, min_df=1, max_df=1.0)
>>> len(run.top_words(3))
2
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesvae.data.text import (
    Corpus,
    drop_empty_documents,
    load_bow,
    read_documents,
    vectorize,
)
from bayesvae.data.validation import check_choice
from bayesvae.diagnostics.topics import npmi_coherence, topic_collapse, topic_diversity
from bayesvae.models.prodlda import ProdLDA, check_bow, check_num_topics, top_word_indices
from bayesvae.runs import RunWriter

__all__ = ["fit_topics", "TopicRun", "as_corpus", "BACKENDS"]

logger = logging.getLogger(__name__)
BACKENDS = ("pyro", "numpyro")


def as_corpus(
    source: Any,
    *,
    column: str | None = None,
    vocabulary: Any = None,
    vocab_size: int | None = 2000,
    min_df: int | float = 2,
    max_df: int | float = 0.5,
    stop_words: Any = "english",
) -> Corpus:
    """A :class:`~bayesvae.data.text.Corpus` from a Corpus, a bag of words (array or sparse,
    with optional ``vocabulary``), a list of strings, or a path: ``.npz``/``.npy`` bags of words
    (:func:`~bayesvae.data.text.load_bow`), or a ``.txt``/``.txt.gz``/``.csv``/folder of raw
    text (:func:`~bayesvae.data.text.read_documents`, then
    :func:`~bayesvae.data.text.vectorize`)."""
    import scipy.sparse as sp

    if isinstance(source, Corpus):
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).suffix in (".npz", ".npy"):
        return load_bow(source)
    if isinstance(source, (str, os.PathLike, list, tuple)):
        documents = read_documents(source, column=column)
        return vectorize(
            documents, max_features=vocab_size, min_df=min_df, max_df=max_df, stop_words=stop_words
        )
    counts = check_bow("bow", source).numpy().astype(np.int64)
    words = (
        [str(w) for w in vocabulary]
        if vocabulary is not None
        else [str(i) for i in range(counts.shape[1])]
    )
    if len(words) != counts.shape[1]:
        raise ValueError(f"vocabulary has {len(words)} words; bow has {counts.shape[1]} columns.")
    return drop_empty_documents(sp.csr_matrix(counts), words)


@dataclass
class TopicRun:
    """What :func:`fit_topics` returns.

    Attributes:
        model: the fitted :class:`~bayesvae.models.ProdLDA` (for ``backend="numpyro"`` the twin's
            weights converted into it; the twin itself is ``twin``).
        corpus: the training corpus; ``history``: per-epoch rows.
        npmi: NPMI of each topic's top 10 words against ``reference_name``; ``diversity``:
            unique share of the top-25 words; ``perplexity``: upper bound on ``eval_corpus``.
        doc_topics: topic proportions ``(N, K)`` of the training documents.
    """

    model: ProdLDA
    corpus: Corpus
    history: Any
    backend: str
    npmi: np.ndarray
    reference_name: str
    diversity: float
    perplexity: float
    perplexity_on: str
    doc_topics: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)
    twin: Any = None
    settings: dict[str, Any] = field(default_factory=dict)

    def top_words(self, n: int = 10) -> list[list[str]]:
        """Top ``n`` words of each topic."""
        return self.model.top_words(n)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "family": "ProdLDA",
            "backend": self.backend,
            "num_topics": self.model.num_topics,
            "vocab_size": self.model.vocab_size,
            "documents": len(self.corpus),
            "dropped_documents": self.corpus.dropped,
            "npmi_mean": float(self.npmi.mean()),
            "npmi_reference": self.reference_name,
            "diversity": self.diversity,
            "perplexity": self.perplexity,
            "perplexity_on": self.perplexity_on,
            "epochs": len(self.history),
            "seconds": float(self.history["seconds"].sum()),
            "problems": self.problems,
            "topics": [
                {"topic": k, "npmi": float(self.npmi[k]), "words": words}
                for k, words in enumerate(self.top_words(10))
            ],
        }

    def table(self) -> str:
        """Top words per topic with their NPMI, and the summary figures."""
        lines = [
            f"ProdLDA ({self.backend}), {self.model.num_topics} topics, "
            f"{self.model.vocab_size} words, {len(self.corpus)} documents"
            + (f" ({self.corpus.dropped} empty dropped)" if self.corpus.dropped else ""),
            f"NPMI (top 10, reference: {self.reference_name}) {self.npmi.mean():.4f}   "
            f"diversity (top 25) {self.diversity:.3f}   perplexity <= {self.perplexity:.1f} "
            f"({self.perplexity_on})",
        ]
        for k, words in enumerate(self.top_words(10)):
            lines.append(f"topic {k:3d}  NPMI {self.npmi[k]:+.3f}  " + " ".join(words))
        lines += [f"warning: {problem}" for problem in self.problems]
        return "\n".join(lines)

    def save(self, out: str | Path | RunWriter) -> Path:
        """Write a run folder: the model (config.yaml with the vocabulary, model.pt,
        metrics.csv), ``topics.csv`` (topic, rank, word, weight), ``doc_topics.csv``,
        ``vocabulary.txt``, ``result.json`` and ``top_words.png``. The folder is saved whole
        (:class:`bayesvae.runs.RunWriter`): a run already at ``out`` is replaced."""
        from bayesvae.runs import writing

        with writing(out) as run:
            self._write(run)
        return run.path

    def _write(self, run: RunWriter) -> None:
        import pandas as pd

        from bayesvae.report import plots
        from bayesvae.runs import save_model

        save_model(
            self.model,
            run,
            history=self.history,
            fit_config={"backend": self.backend, **self.settings},
        )
        weights = self.model.topic_word_weights()
        top = top_word_indices(weights, 10)
        vocabulary = self.corpus.vocabulary
        rows = [
            {"topic": k, "rank": r + 1, "word": vocabulary[i], "weight": float(weights[k, i])}
            for k in range(len(top))
            for r, i in enumerate(top[k])
        ]
        run.write_csv("topics.csv", pd.DataFrame(rows))
        theta = (
            self.doc_topics
            if self.doc_topics is not None
            else self.model.transform(self.corpus.bow)
        )
        doc_topics = pd.DataFrame(theta, columns=[f"topic_{k}" for k in range(theta.shape[1])])
        doc_topics.insert(
            0, "document", self.corpus.kept if len(self.corpus.kept) else range(len(theta))
        )
        run.write_csv("doc_topics.csv", doc_topics, float_format="%.5g")
        run.write_text("vocabulary.txt", "\n".join(vocabulary) + "\n")
        run.write_json("result.json", self.to_dict())
        plots.topic_top_words(weights, vocabulary, run.file("top_words.png"), npmi=self.npmi)


def fit_topics(
    source: Any,
    num_topics: int = 20,
    *,
    backend: str = "pyro",
    epochs: int = 100,
    batch_size: int = 200,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.99, 0.999),
    column: str | None = None,
    vocabulary: Any = None,
    vocab_size: int | None = 2000,
    min_df: int | float = 2,
    max_df: int | float = 0.5,
    stop_words: Any = "english",
    reference: Any = None,
    eval_bow: Any = None,
    seed: int = 0,
    progress: bool = False,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    **model_options: Any,
) -> TopicRun:
    """Fit ProdLDA with ``num_topics`` topics to ``source`` (see :func:`as_corpus`).

    ``backend="pyro"`` trains the Pyro model with :func:`bayesvae.fit` (TraceMeanField_ELBO);
    ``"numpyro"`` trains the NumPyro/Equinox twin with a jitted epoch loop. The paper's Adam
    settings are the defaults (lr 0.002, beta1 0.99), batch 200. NPMI is measured against
    ``reference`` (a bag of words over the same vocabulary; default: the training corpus), the
    perplexity bound on ``eval_bow`` (default: the training corpus). ``checkpoint_dir``,
    ``checkpoint_every`` and ``resume`` are :func:`bayesvae.fit`'s (Pyro backend only).
    """
    check_choice("backend", backend, BACKENDS)
    if backend != "pyro" and (checkpoint_dir is not None or resume):
        raise ValueError("checkpoint_dir and resume are for backend='pyro'.")
    corpus = as_corpus(
        source,
        column=column,
        vocabulary=vocabulary,
        vocab_size=vocab_size,
        min_df=min_df,
        max_df=max_df,
        stop_words=stop_words,
    )
    vocab = corpus.vocabulary
    check_num_topics(num_topics, len(vocab))
    options = dict(vocabulary=vocab, vectorizer=corpus.vectorizer, seed=seed, **model_options)
    settings = dict(epochs=epochs, batch_size=batch_size, lr=lr, betas=list(betas), seed=seed)
    twin = None
    if backend == "pyro":
        import pandas as pd  # noqa: F401  (history is a DataFrame)

        from bayesvae.infer.svi import fit

        model = ProdLDA(len(vocab), num_topics, **options)
        result = fit(
            model,
            corpus.bow.toarray().astype(np.float32),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            betas=betas,
            seed=seed,
            progress=progress,
            device="cpu",
            eval_size=0,  # quality is measured after the fit (NPMI, the perplexity bound)
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
        )
        history = result.history
        model.eval()
    else:
        import pandas as pd

        from bayesvae.backends.numpyro.loop import SVISettings
        from bayesvae.backends.numpyro.prodlda import NumPyroProdLDA

        training = SVISettings(
            epochs=epochs, batch_size=batch_size, lr=lr, betas=betas, seed=seed, progress=progress
        )
        twin = NumPyroProdLDA(len(vocab), num_topics, **options).fit(corpus.bow, None, training)
        model, history = twin.to_pyro(), pd.DataFrame(twin.history)
    if reference is None:
        reference, reference_name = corpus.bow, "training documents"
    else:
        reference_name = "reference documents"
        if reference.shape[1] != len(vocab):
            raise ValueError(
                f"reference has {reference.shape[1]} words; the vocabulary has {len(vocab)}."
            )
    top10 = top_word_indices(model.topic_word_weights(), 10)
    npmi = npmi_coherence(top10, reference)
    diversity = topic_diversity(top_word_indices(model.topic_word_weights(), 25))
    if eval_bow is None:
        eval_bow, perplexity_on = corpus.bow, "training documents"
    else:
        perplexity_on = "evaluation documents"
    perplexity = model.perplexity(eval_bow, seed=seed)
    # with a small vocabulary the top 10 words of any two topics overlap by necessity
    compared = min(10, max(2, len(vocab) // num_topics))
    top_compared = top_word_indices(model.topic_word_weights(), compared)
    doc_topics = model.transform(corpus.bow)
    problems = topic_collapse(top_compared, doc_topics, warn=True)["problems"]
    return TopicRun(
        model,
        corpus,
        history,
        backend,
        npmi,
        reference_name,
        diversity,
        perplexity,
        perplexity_on,
        doc_topics=doc_topics,
        problems=problems,
        twin=twin,
        settings=settings,
    )
