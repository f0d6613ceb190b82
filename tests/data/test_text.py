import gzip
import tarfile

import numpy as np
import pytest
import scipy.sparse as sp

from bayesvae.data.text import (
    load_20news_prodlda,
    load_bow,
    read_documents,
    vectorize,
    vectorize_with_vocabulary,
)

DOCS = ["The cat sat on the mat", "A dog chased the cat", "", "the the the", "Dogs and cats"]


def test_read_documents_from_every_source(tmp_path):
    (tmp_path / "lines.txt").write_text("first doc\nsecond doc\n")
    with gzip.open(tmp_path / "lines.txt.gz", "wt") as handle:
        handle.write("one\ntwo\nthree\n")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("bee")
    (folder / "sub" / "a.txt").write_text("ant")
    (tmp_path / "docs.csv").write_text("id,text\n1,hello world\n2,\n")
    assert read_documents(tmp_path / "lines.txt") == ["first doc", "second doc"]
    assert read_documents(tmp_path / "lines.txt.gz") == ["one", "two", "three"]
    assert read_documents(folder) == ["bee", "ant"]  # sorted by path: b.txt < sub/a.txt
    assert read_documents(tmp_path / "docs.csv", column="text") == ["hello world", ""]
    assert read_documents(["x", "y"]) == ["x", "y"]
    with pytest.raises(ValueError, match="needs column="):
        read_documents(tmp_path / "docs.csv")
    with pytest.raises(ValueError, match="column 'body' not found"):
        read_documents(tmp_path / "docs.csv", column="body")
    with pytest.raises(FileNotFoundError):
        read_documents(tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="strings"):
        read_documents(["ok", 3])


def test_vectorize_drops_empty_documents_and_keeps_settings(caplog):
    corpus = vectorize(DOCS, min_df=1, max_df=1.0)
    assert corpus.dropped == 2  # "" and the stop-word-only "the the the"
    assert corpus.kept.tolist() == [0, 1, 4]
    assert "cat" in corpus.vocabulary and "the" not in corpus.vocabulary
    assert "dropped 2 empty document" in caplog.text
    again = vectorize_with_vocabulary(["cat cat dog", ""], corpus.vocabulary, corpus.vectorizer)
    assert again.shape == (2, len(corpus.vocabulary))
    assert again[0, corpus.vocabulary.index("cat")] == 2


@pytest.mark.parametrize(
    ("documents", "options", "match"),
    [
        ([], {}, "corpus is empty"),
        (["the and of", "a an the"], {"min_df": 1, "max_df": 1.0}, "vocabulary is empty"),
        (["cat", "dog"], {"min_df": 5}, "vocabulary is empty"),
    ],
)
def test_vectorize_refuses_empty_results(documents, options, match):
    with pytest.raises(ValueError, match=match):
        vectorize(documents, **options)


def test_load_bow_formats(tmp_path):
    dense = np.array([[1, 0, 2], [0, 0, 0], [0, 3, 0]])
    np.save(tmp_path / "bow.npy", dense)
    sp.save_npz(tmp_path / "bow.npz", sp.csr_matrix(dense))
    for name in ("bow.npy", "bow.npz"):
        corpus = load_bow(tmp_path / name)
        assert corpus.bow.shape == (2, 3) and corpus.dropped == 1
    np.save(tmp_path / "neg.npy", -dense)
    with pytest.raises(ValueError, match="negative"):
        load_bow(tmp_path / "neg.npy")
    np.savez(tmp_path / "other.npz", x=dense)
    with pytest.raises(ValueError, match="neither"):
        load_bow(tmp_path / "other.npz")


def test_paper_20news_loads(shared_data):
    train, test = load_20news_prodlda(shared_data / "20news_prodlda")
    assert train.bow.shape == (11258, 1995) and test.bow.shape == (7487, 1995)
    assert train.bow.sum() == 991493 and test.bow.sum() == 629312
    assert len(train.vocabulary) == 1995


def test_pipeline_on_real_20news_text(shared_data):
    """Raw 20 Newsgroups messages (the first 300 of the archive) through the pipeline."""
    archive = shared_data / "20news_raw" / "20news-bydate.tar.gz"
    if not archive.exists():
        pytest.skip("raw 20 Newsgroups archive absent")
    documents = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile():
                documents.append(tar.extractfile(member).read().decode("latin-1"))
                if len(documents) == 300:
                    break
    corpus = vectorize(documents, max_features=500, min_df=3, max_df=0.5)
    assert corpus.bow.shape[1] == 500
    assert len(corpus) + corpus.dropped == 300
    assert corpus.bow.sum() > 10_000
