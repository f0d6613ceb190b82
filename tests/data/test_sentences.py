"""Sentences for sequence models: tokens, sentence splits, vocabularies, 20 Newsgroups."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from bayesvae.data.sentences import (
    SPECIALS,
    Vocabulary,
    load_20news_messages,
    load_20news_sentences,
    sentences_from_text,
    split_sentences,
    tokenize,
)


def test_tokens_and_sentences():
    assert tokenize("Don't PANIC, it's 42!") == ["don't", "panic", ",", "it's", "42", "!"]
    text = "One line.\nStill the first?  Two!\n\nThree without a stop"
    assert split_sentences(text) == [
        "One line.",
        "Still the first?",
        "Two!",
        "Three without a stop",
    ]
    kept = sentences_from_text([text], min_tokens=3, max_tokens=4)
    assert kept == [
        ["one", "line", "."],
        ["still", "the", "first", "?"],
        ["three", "without", "a", "stop"],
    ]


def test_vocabulary_round_trip_and_order():
    sentences = [["b", "a", "a"], ["c", "a", "b"]]
    vocab = Vocabulary.build(sentences)
    assert vocab.words == (*SPECIALS, "a", "b", "c")  # by count, ties alphabetically
    ids = vocab.encode([["a", "b"], "c zebra a"])
    assert ids.tolist() == [[1, 4, 5, 2, 0], [1, 6, 3, 4, 2]]
    assert vocab.decode(ids) == ["a b", "c <unk> a"]
    assert vocab.encode(["a b c"], max_tokens=2).tolist() == [[1, 4, 5, 2]]
    small = Vocabulary.build(sentences, max_size=5)
    assert small.words == (*SPECIALS, "a")
    assert Vocabulary.build(sentences, min_count=2).words == (*SPECIALS, "a", "b")


def test_vocabulary_refusals():
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(("a", "b"))
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary((*SPECIALS, "a", "a"))
    with pytest.raises(ValueError, match="max_size must be an integer > 4"):
        Vocabulary.build([["a"]], max_size=3)


def test_a_missing_archive_names_the_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="20news-bydate.tar.gz"):
        load_20news_sentences(tmp_path)
    with pytest.raises(FileNotFoundError, match="20news-bydate.tar.gz"):
        load_20news_messages(tmp_path)


def _message(body: str) -> bytes:
    return (
        "From: someone@example.org\nSubject: Re: hockey\nLines: 5\n\n"
        "In article <1@x> someone writes:\n> a quoted line\n" + body + "\n\n--\nSigned, me\n"
    ).encode("latin-1")


def test_20news_messages_lose_headers_quotes_and_signatures_in_file_order(tmp_path):
    members = {
        "20news-bydate-train/rec.sport.hockey/2": _message("The second training message."),
        "20news-bydate-train/rec.sport.hockey/1": _message("The first training message, caf\xe9."),
        "20news-bydate-test/sci.space/9": _message("A test message about orbits."),
    }
    with tarfile.open(tmp_path / "20news-bydate.tar.gz", "w:gz") as archive:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    messages = load_20news_messages(tmp_path)
    assert [m.strip() for m in messages["train"]] == [
        "The first training message, caf\xe9.",
        "The second training message.",
    ]
    assert [m.strip() for m in messages["test"]] == ["A test message about orbits."]


@pytest.mark.slow
@pytest.mark.data
def test_20news_sentences(shared_data):
    splits = load_20news_sentences(shared_data / "20news_raw")
    sizes = {name: len(rows) for name, rows in splits.items()}
    assert sizes["train"] > 100_000 and sizes["valid"] > 30_000 and sizes["test"] > 30_000
    lengths = np.array([len(s) for s in splits["train"]])
    assert lengths.min() >= 5 and lengths.max() <= 40
    # headers are gone: "from :" / "subject :" starts only where a body quotes one (0.14 %)
    starts = [" ".join(s[:2]) for s in splits["train"]]
    assert np.mean([start in ("from :", "subject :") for start in starts]) < 0.005
