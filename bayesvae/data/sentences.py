"""Sentences for sequence models: tokenize, split text into sentences, build a vocabulary with the
special tokens ``<pad> <bos> <eos> <unk>``, turn sentences into padded id arrays and back, and
read the raw 20 Newsgroups messages as sentences (headers, quotes and signatures stripped as
scikit-learn's ``fetch_20newsgroups(remove=("headers", "footers", "quotes"))`` does).

Torch-free: ids are numpy arrays; a model turns them into tensors.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PAD",
    "BOS",
    "EOS",
    "UNK",
    "SPECIALS",
    "Vocabulary",
    "tokenize",
    "split_sentences",
    "sentences_from_text",
    "load_20news_messages",
    "load_20news_sentences",
    "NEWSGROUPS_URL",
]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
#: the special tokens, with ids 0..3 in every vocabulary
SPECIALS = (PAD, BOS, EOS, UNK)
#: where users who are online can fetch the raw 20 Newsgroups ("bydate") archive
NEWSGROUPS_URL = "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz"

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: ``"Don't panic!"`` -> ``["don't", "panic",
    "!"]``."""
    return _TOKEN.findall(text.lower())


def split_sentences(text: str) -> list[str]:
    """Split text at ``.``, ``!`` or ``?`` followed by white space, and at blank lines; inner
    line breaks become spaces."""
    return [" ".join(part.split()) for part in _SENTENCE_END.split(text) if part.strip()]


def sentences_from_text(
    texts: Iterable[str], *, min_tokens: int = 1, max_tokens: int | None = None
) -> list[list[str]]:
    """Tokenized sentences of ``texts`` with ``min_tokens`` to ``max_tokens`` tokens each."""
    kept = []
    for text in texts:
        for sentence in split_sentences(text):
            tokens = tokenize(sentence)
            if len(tokens) >= min_tokens and (max_tokens is None or len(tokens) <= max_tokens):
                kept.append(tokens)
    return kept


@dataclass(frozen=True)
class Vocabulary:
    """Words by id; ids 0-3 are ``<pad> <bos> <eos> <unk>``.

    ``encode`` turns tokenized sentences into ``(N, T)`` int64 ids ``<bos> w_1 ... w_n <eos>``
    padded with 0 (``T`` = longest sentence + 2); ``decode`` turns ids back into text (stopping at
    ``<eos>``).
    """

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if tuple(self.words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {list(SPECIALS)}, got {self.words[:4]}.")
        if len(set(self.words)) != len(self.words):
            raise ValueError("a vocabulary's words must be distinct.")

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], *, max_size: int = 10000, min_count: int = 1
    ) -> Vocabulary:
        """The ``max_size`` most frequent tokens (specials included in the count) seen at least
        ``min_count`` times; ties broken alphabetically, so the same sentences give the same
        vocabulary."""
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= len(SPECIALS):
            raise ValueError(f"max_size must be an integer > {len(SPECIALS)}, got {max_size!r}.")
        counts = Counter(token for sentence in sentences for token in sentence)
        ranked = sorted(
            (word for word, n in counts.items() if n >= min_count and word not in SPECIALS),
            key=lambda word: (-counts[word], word),
        )
        return cls(SPECIALS + tuple(ranked[: max_size - len(SPECIALS)]))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        """word -> id."""
        return {word: i for i, word in enumerate(self.words)}

    def encode(self, sentences: Sequence[Sequence[str] | str], *, max_tokens: int | None = None):
        """Ids ``(N, T)`` of ``<bos> ... <eos>``, padded with 0; a string is tokenized first;
        unknown words become ``<unk>``; sentences longer than ``max_tokens`` are cut."""
        index = self.index
        rows = []
        for sentence in sentences:
            tokens = tokenize(sentence) if isinstance(sentence, str) else list(sentence)
            if max_tokens is not None:
                tokens = tokens[:max_tokens]
            rows.append([1] + [index.get(t, 3) for t in tokens] + [2])
        width = max((len(r) for r in rows), default=2)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids

    def decode(self, ids: Any) -> list[str]:
        """Text of each row of ids ``(N, T)``, without ``<bos>``, stopping at ``<eos>`` or
        ``<pad>``."""
        texts = []
        for row in np.asarray(ids):
            words = []
            for token in row.tolist():
                if token in (0, 2):
                    break
                if token != 1:
                    words.append(self.words[token])
            texts.append(" ".join(words))
        return texts


def _newsgroup_body(raw: bytes) -> str:
    from sklearn.datasets._twenty_newsgroups import (
        strip_newsgroup_footer,
        strip_newsgroup_header,
        strip_newsgroup_quoting,
    )

    text = raw.decode("latin-1")
    return strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(text)))


def load_20news_messages(root: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The raw 20 Newsgroups "bydate" messages in ``root/20news-bydate.tar.gz``, as text.

    Each message loses its headers, quoted replies and signature (as scikit-learn's
    ``remove=("headers", "footers", "quotes")``). Returns ``{"train": [...], "test": [...]}``,
    the bydate splits (11,314 and 7,532 messages), each in sorted file order. Users who are
    online can fetch the archive from :data:`NEWSGROUPS_URL`.
    """
    path = Path(root) / "20news-bydate.tar.gz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; download 20news-bydate.tar.gz from {NEWSGROUPS_URL}."
        )
    messages: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if not member.isfile():
                continue
            split = "train" if member.name.startswith("20news-bydate-train/") else "test"
            handle = archive.extractfile(member)
            if handle is not None:
                messages[split].append((member.name, handle.read()))
    return {
        split: [_newsgroup_body(raw) for _, raw in sorted(items)]
        for split, items in messages.items()
    }


def load_20news_sentences(
    root: str | os.PathLike[str],
    *,
    min_tokens: int = 5,
    max_tokens: int = 40,
) -> dict[str, list[list[str]]]:
    """Sentences of the raw 20 Newsgroups "bydate" messages in ``root/20news-bydate.tar.gz``.

    Each message (from :func:`load_20news_messages`: headers, quoted replies and signature
    stripped) is split into sentences and tokenized; sentences of ``min_tokens`` to
    ``max_tokens`` tokens are kept. Splits, fixed: ``"train"`` from the bydate training
    messages; the bydate test messages, in sorted file order, alternate between ``"valid"``
    (even positions) and ``"test"`` (odd). Users who are online can fetch the archive from
    :data:`NEWSGROUPS_URL`.
    """
    messages = load_20news_messages(root)
    out: dict[str, list[list[str]]] = {"train": [], "valid": [], "test": []}
    for split, bodies in messages.items():
        for position, body in enumerate(bodies):
            target = split if split == "train" else ("valid", "test")[position % 2]
            out[target].extend(
                sentences_from_text([body], min_tokens=min_tokens, max_tokens=max_tokens)
            )
    return out
