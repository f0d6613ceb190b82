"""A sentence VAE (Bowman et al. 2016, "Generating Sentences from a Continuous Space").

Generative model: ``z ~ N(0, I)``; the words ``w_1 .. w_n <eos>`` from an RNN (GRU or LSTM)
decoder whose initial state and every input step are conditioned on ``z``, fed the previous word
(teacher forcing). Guide: an RNN encoder over the sentence, its last state to the Gaussian
``q(z | w)``. Sequences run packed (``pack_padded_sequence``), so padding costs nothing and
never enters a state.

Training helps against posterior collapse as the paper does: **word dropout** (each input word
of the decoder replaced by ``<unk>`` with probability ``word_dropout`` while training, which
makes the decoder lean on ``z``), KL annealing (``bayesvae.fit(..., kl_warmup=E)``), and
optionally **free bits** (Kingma et al. 2016: each latent dimension's KL, averaged over the
minibatch, counts as at least ``free_bits`` nats; written as a ``pyro.factor`` in the guide, so
the objective is then no longer the ELBO).

Data are word ids ``(N, T)``: ``<bos> w_1 .. w_n <eos>`` padded with 0, from the model's
vocabulary (:meth:`SentenceVAE.encode_text`); every query takes plain strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bayesvae.data.sentences import SPECIALS, Vocabulary
from bayesvae.data.validation import (
    check_choice,
    check_non_negative_number,
    check_number,
    check_positive_int,
    check_positive_number,
)
from bayesvae.models.base import PyroModel, seeded_init

__all__ = ["SentenceVAE", "RNN_CELLS"]

RNN_CELLS = ("gru", "lstm")
_PAD, _BOS, _EOS, _UNK = range(len(SPECIALS))
#: most next-word logits one importance-sampling chunk may hold (floats)
_LOGIT_BUDGET = 100_000_000


class SentenceVAE(PyroModel):
    """Sentence VAE as a Pyro model/guide pair ``model(ids)``, ``guide(ids)`` (sites ``z``,
    ``words``; ``free_bits`` in the guide when set).

    Args:
        vocabulary: the words by id, starting with ``<pad> <bos> <eos> <unk>`` (a
            :class:`~bayesvae.data.sentences.Vocabulary` or its word list).
        latent_dim: size of ``z``.
        embedding_dim: word embedding size (shared by encoder and decoder).
        hidden_dim: RNN state size.
        rnn: ``"gru"`` or ``"lstm"``.
        word_dropout: probability of replacing each decoder input word by ``<unk>`` in training.
        free_bits: nats per latent dimension below which its (minibatch-mean) KL is not pushed
            down (0: the plain ELBO).
        seed: seed for the initial weights.

    Example:
        >>> vocab = Vocabulary.build([["a", "cat"], ["a", "dog"]])
        >>> vae = SentenceVAE(vocab, latent_dim=4, hidden_dim=32)
        >>> ids = torch.as_tensor(vae.encode_text(["a cat", "a dog"]))
        >>> svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}),
        ...                      pyro.infer.Trace_ELBO())
        >>> svi.step(ids)
    """

    max_plate_nesting = 1
    local_plate = "data"
    continuous_latent = True
    default_elbo = "meanfield"
    supported_elbos = ("trace", "meanfield")
    supported_elbos_reason = (
        "the decoder runs one RNN pass per sentence and takes no batch of particles; "
        "log_likelihood(texts, num_samples=K) gives the importance-sampled bound."
    )

    def __init__(
        self,
        vocabulary: Vocabulary | Sequence[str],
        *,
        latent_dim: int = 16,
        embedding_dim: int = 128,
        hidden_dim: int = 256,
        rnn: str = "gru",
        word_dropout: float = 0.25,
        free_bits: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not isinstance(vocabulary, Vocabulary):
            if isinstance(vocabulary, str) or not isinstance(vocabulary, Sequence):
                raise TypeError(
                    "vocabulary must be a Vocabulary or a list of words, got "
                    f"{type(vocabulary).__name__}."
                )
            vocabulary = Vocabulary(tuple(vocabulary))
        latent_dim = check_positive_int("latent_dim", latent_dim)
        embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        check_choice("rnn", rnn, RNN_CELLS)
        word_dropout = check_number("word_dropout", word_dropout, low=0, high=1, high_open=True)
        free_bits = check_non_negative_number("free_bits", free_bits)
        super().__init__(
            dict(
                vocabulary=list(vocabulary.words),
                latent_dim=latent_dim,
                embedding_dim=embedding_dim,
                hidden_dim=hidden_dim,
                rnn=rnn,
                word_dropout=word_dropout,
                free_bits=free_bits,
                seed=seed,
            )
        )
        self.vocabulary = vocabulary
        self.latent_dim, self.hidden_dim, self.rnn = latent_dim, hidden_dim, rnn
        self.word_dropout, self.free_bits = word_dropout, free_bits
        cell = nn.GRU if rnn == "gru" else nn.LSTM
        size = len(vocabulary)
        with seeded_init(seed):
            self.embedding = nn.Embedding(size, embedding_dim, padding_idx=_PAD)
            self.encoder_rnn = cell(embedding_dim, hidden_dim, batch_first=True)
            self.encoder_head = nn.Linear(hidden_dim, 2 * latent_dim)
            self.latent_to_state = nn.Linear(latent_dim, hidden_dim)
            self.decoder_rnn = cell(embedding_dim + latent_dim, hidden_dim, batch_first=True)
            self.output = nn.Linear(hidden_dim, size)
        self.decoder = nn.ModuleDict(
            {"rnn": self.decoder_rnn, "state": self.latent_to_state, "output": self.output}
        )
        self.encoder = nn.ModuleDict({"rnn": self.encoder_rnn, "head": self.encoder_head})

    # ------------------------------------------------------------------------------- networks
    @staticmethod
    def lengths(ids: torch.Tensor) -> torch.Tensor:
        """Tokens per row of ``ids: (B, T)`` before the padding (``<bos>`` and ``<eos>``
        included), on the CPU as packing wants."""
        return (ids != _PAD).sum(-1).cpu()

    def _initial_state(self, z: torch.Tensor) -> Any:
        hidden = torch.tanh(self.latent_to_state(z)).unsqueeze(0)
        return hidden if self.rnn == "gru" else (hidden, torch.zeros_like(hidden))

    def posterior(self, ids: torch.Tensor) -> dist.TorchDistribution:
        """``q(z | w)`` for ``ids: (B, T)``: a diagonal Gaussian, batch shape ``(B,)``."""
        packed = pack_padded_sequence(
            self.embedding(ids), self.lengths(ids), batch_first=True, enforce_sorted=False
        )
        _, state = self.encoder_rnn(packed)
        last = state[0] if self.rnn == "lstm" else state
        loc, log_var = self.encoder_head(last[-1]).chunk(2, -1)
        return dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1)

    def word_logits(self, z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-word logits ``(B, T - 1, V)``: the decoder reads ``ids[:, :-1]``
        (with word dropout while training) and ``z: (B, latent_dim)`` at every step."""
        inputs = ids[:, :-1]
        if self.training and self.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=ids.device) < self.word_dropout
            keep = (inputs == _BOS) | (inputs == _PAD)
            inputs = torch.where(drop & ~keep, torch.full_like(inputs, _UNK), inputs)
        steps = self.embedding(inputs)
        steps = torch.cat([steps, z.unsqueeze(1).expand(-1, steps.shape[1], -1)], -1)
        lengths = (self.lengths(ids) - 1).clamp(min=1)
        packed = pack_padded_sequence(steps, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.decoder_rnn(packed, self._initial_state(z))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=inputs.shape[1])
        return self.output(out)

    def words_dist(self, z: torch.Tensor, ids: torch.Tensor) -> dist.TorchDistribution:
        """``p(w | z)`` of the targets ``ids[:, 1:]``: categorical per step, padding masked,
        event shape ``(T - 1,)``."""
        targets = ids[:, 1:]
        return dist.Categorical(logits=self.word_logits(z, ids)).mask(targets != _PAD).to_event(1)

    # ----------------------------------------------------------------------------- Pyro program
    def model(self, ids: torch.Tensor, *, num_data: int | None = None) -> torch.Tensor:
        """``ids: (B, T)`` word ids; ``num_data`` the data set's size (minibatch scale)."""
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        pyro.module(f"{self.pyro_name}.embedding", self.embedding)
        ids = ids[:, : int(self.lengths(ids).max())]  # no step of padding only
        with self.data_plate(ids, num_data):
            zeros = torch.zeros(ids.shape[0], self.latent_dim, device=ids.device)
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            if z.dim() != 2:
                raise ValueError(
                    "SentenceVAE decodes one z per sentence; it takes no batch of particles "
                    "(num_particles > 1 vectorized): use num_particles=1."
                )
            return pyro.sample("words", self.words_dist(z, ids), obs=ids[:, 1:])

    def guide(self, ids: torch.Tensor, *, num_data: int | None = None) -> torch.Tensor:
        """``q(z | w)``; same arguments as :meth:`model`."""
        pyro.module(f"{self.pyro_name}.encoder", self.encoder)
        pyro.module(f"{self.pyro_name}.embedding", self.embedding)
        with self.data_plate(ids, num_data):
            posterior = self.posterior(ids)
            if self.free_bits:
                # objective - sum_d max(free_bits - mean KL_d, 0): KL_d below the floor gets no
                # gradient (a guide factor's value is subtracted like log q)
                loc, scale = posterior.base_dist.loc, posterior.base_dist.scale
                kl = 0.5 * (loc**2 + scale**2 - 1) - scale.log()
                shortfall = (self.free_bits - kl.mean(0)).clamp(min=0).sum()
                pyro.factor("free_bits", shortfall.expand(ids.shape[0]), has_rsample=True)
            return pyro.sample("z", posterior)

    # ------------------------------------------------------------------------------ validation
    def check_data(self, ids: Any, *rest: Any) -> tuple[torch.Tensor, ...]:
        """Word ids ``(N, T)``: integers in ``[0, V)``, each row ``<bos> ... <eos>`` then 0s."""
        if rest:
            raise ValueError(f"SentenceVAE takes one array of word ids, got {1 + len(rest)}.")
        if isinstance(ids, (list, tuple)) and ids and isinstance(ids[0], str):
            raise TypeError(
                "SentenceVAE trains on word ids; turn texts into ids with model.encode_text(texts)."
            )
        array = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"ids must be integer word ids, got dtype {array.dtype}.")
        if array.ndim != 2 or array.shape[1] < 3:
            raise ValueError(
                f"ids must have shape (N, T) with T >= 3 (<bos>, a word, <eos>), got {array.shape}."
            )
        size = len(self.vocabulary)
        if array.size and (array.min() < 0 or array.max() >= size):
            raise ValueError(f"ids must lie in [0, {size - 1}] (the vocabulary), got "
                             f"{array.min()} to {array.max()}.")  # fmt: skip
        if array.shape[0] and not (array[:, 0] == _BOS).all():
            raise ValueError("every row of ids must start with <bos> (id 1).")
        lengths = (array != _PAD).sum(1)
        ends = array[np.arange(len(array)), np.maximum(lengths - 1, 0)]
        inner_pad = (array != _PAD).cumsum(1)[np.arange(len(array)), -1] != lengths
        if (ends != _EOS).any() or (lengths < 3).any() or inner_pad.any():
            raise ValueError(
                "every row of ids must be <bos> w_1 .. w_n <eos> (n >= 1) followed only by "
                "padding (0)."
            )
        return (torch.as_tensor(array, dtype=torch.int64),)

    # --------------------------------------------------------------------------------- queries
    def encode_text(self, texts: Sequence[str], *, max_tokens: int | None = None) -> np.ndarray:
        """Word ids ``(N, T)`` of ``texts`` in this model's vocabulary (unknown words:
        ``<unk>``)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got one string.")
        return self.vocabulary.encode(list(texts), max_tokens=max_tokens)

    def _ids(self, texts: Sequence[str]) -> torch.Tensor:
        ids = self.encode_text(texts)
        if len(ids) == 0:
            raise ValueError("texts is empty; expected at least one sentence.")
        if ((ids != _PAD).sum(1) < 3).any():
            raise ValueError("every text needs at least one word.")
        return torch.as_tensor(ids, device=self.device)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | w)`` of each text: ``(loc, scale)``, each ``(N, latent_dim)``."""
        posterior = self.posterior(self._ids(texts))
        return posterior.base_dist.loc, posterior.base_dist.scale

    @torch.no_grad()
    def generate(
        self,
        z: Any,
        *,
        greedy: bool = True,
        temperature: float = 1.0,
        max_len: int = 40,
        seed: int | None = None,
    ) -> list[str]:
        """Decode ``z: (N, latent_dim)`` into texts, word by word from ``<bos>`` until ``<eos>``
        or ``max_len`` words: the most probable word (``greedy``) or a draw at ``temperature``."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}.")
        temperature = check_positive_number("temperature", temperature)
        max_len = check_positive_int("max_len", max_len)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed) if seed is not None else generator.seed()
        was_training = self.training
        self.eval()
        try:
            state = self._initial_state(z)
            word = torch.full((z.shape[0], 1), _BOS, dtype=torch.int64, device=self.device)
            out = []
            for _ in range(max_len + 1):
                step = torch.cat([self.embedding(word), z.unsqueeze(1)], -1)
                hidden, state = self.decoder_rnn(step, state)
                logits = self.output(hidden[:, -1])
                logits[:, _PAD] = logits[:, _BOS] = -math.inf
                if greedy:
                    word = logits.argmax(-1, keepdim=True)
                else:
                    probs = torch.softmax(logits / temperature, -1)
                    word = torch.multinomial(probs, 1, generator=generator)
                out.append(word)
        finally:
            self.train(was_training)
        ids = torch.cat(out, 1).cpu().numpy()
        ids[:, -1] = _EOS
        return self.vocabulary.decode(np.concatenate([np.ones((len(ids), 1), int), ids], 1))

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        max_len: int = 40,
        greedy: bool = False,
        seed: int | None = None,
    ) -> list[str]:
        """``n`` sentences from the generative model: ``z ~ p(z)``, then words drawn at
        ``temperature`` (or the most probable with ``greedy``)."""
        n = check_positive_int("n", n)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self.generate(z, greedy=greedy, temperature=temperature, max_len=max_len, seed=seed)

    def reconstruct(self, texts: Sequence[str], *, max_len: int = 40) -> list[str]:
        """Greedy decoding of each text's posterior mean."""
        loc, _ = self.encode(texts)
        return self.generate(loc, greedy=True, max_len=max_len)

    def interpolate(self, a: str, b: str, steps: int = 5, *, max_len: int = 40) -> list[str]:
        """The paper's homotopy: greedy decodings along the straight line between the posterior
        means of texts ``a`` and ``b``, ``steps`` points including both ends."""
        steps = check_positive_int("steps", steps)
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (both ends), got {steps}.")
        loc, _ = self.encode([a, b])
        weights = torch.linspace(0, 1, steps, device=loc.device)[:, None]
        return self.generate((1 - weights) * loc[0] + weights * loc[1], max_len=max_len)

    @torch.no_grad()
    def log_likelihood(
        self,
        texts: Sequence[str],
        *,
        num_samples: int = 500,
        batch_size: int = 50,
        particle_batch: int = 100,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Importance-sampled ``log p(w)`` per sentence, nats ``(N,)`` (Burda et al. 2016,
        ``K = num_samples`` draws of ``q(z | w)``); the target words include ``<eos>``. Draws
        are decoded ``particle_batch`` at a time, fewer where the logits of a chunk would
        exceed about 100 million floats (a large vocabulary)."""
        ids = self._ids(texts)
        num_samples = check_positive_int("num_samples", num_samples)
        particle_batch = check_positive_int("particle_batch", particle_batch)
        if seed is not None:
            pyro.set_rng_seed(seed)
        was_training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, len(ids), check_positive_int("batch_size", batch_size)):
                batch = ids[start : start + batch_size]
                q = self.posterior(batch)
                total = torch.full((len(batch),), -math.inf, device=batch.device)
                # the logits of one chunk, k * B * T * V floats, stay under _LOGIT_BUDGET
                width = len(batch) * batch.shape[1] * len(self.vocabulary)
                chunk = max(1, min(particle_batch, _LOGIT_BUDGET // width))
                for done in range(0, num_samples, chunk):
                    k = min(chunk, num_samples - done)
                    z = q.sample((k,))  # (k, B, L)
                    repeated = batch.repeat(k, 1)
                    flat = z.reshape(-1, self.latent_dim)
                    log_p = self.words_dist(flat, repeated).log_prob(repeated[:, 1:])
                    log_w = log_p.reshape(k, -1) + dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
                    log_w = log_w - q.log_prob(z)
                    total = torch.logaddexp(total, log_w.logsumexp(0))
                out.append(total - math.log(num_samples))
        finally:
            self.train(was_training)
        return torch.cat(out).cpu()

    def perplexity(
        self, texts: Sequence[str], *, num_samples: int = 500, seed: int | None = None
    ) -> dict[str, float]:
        """Test figures from :meth:`log_likelihood`: ``nll`` (mean nats per sentence),
        ``ppl_sentence`` (``exp`` of it) and ``ppl_word`` (``exp`` of the total NLL over the
        words, ``<eos>`` counted as one)."""
        log_px = self.log_likelihood(texts, num_samples=num_samples, seed=seed)
        words = int((torch.as_tensor(self.encode_text(texts)) != _PAD).sum() - len(texts))
        total = -float(log_px.sum())
        return {
            "nll": total / len(texts),
            "ppl_sentence": math.exp(total / len(texts)),
            "ppl_word": math.exp(total / words),
            "words": words,
        }

    @torch.no_grad()
    def kl(self, texts: Sequence[str]) -> torch.Tensor:
        """``KL(q(z | w) || p(z))`` per sentence, nats ``(N,)``: about 0 means a collapsed
        posterior (the decoder ignores ``z``)."""
        loc, scale = self.encode(texts)
        return (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1).cpu()
