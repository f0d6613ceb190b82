import gzip
import struct

import numpy as np
import pytest
import torch

from bayesvae.data import (
    DynamicBinarize,
    TensorBatches,
    load_array,
    load_binarized_mnist,
    load_digits,
    load_mnist,
    make_loader,
)


def test_digits_are_the_embedded_default_scaled_to_unit_interval():
    data = load_digits()
    assert data.x.shape == (1797, 64) and data.x.dtype == np.float32
    assert data.x.min() == 0.0 and data.x.max() == 1.0
    assert data.y.shape == (1797,) and set(np.unique(data.y)) == set(range(10))
    assert load_digits(flatten=False).x.shape == (1797, 1, 8, 8)


def _write_idx(path, array, magic):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 5)):
        _write_idx(
            tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051
        )
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), 2049)
    return tmp_path


def test_load_mnist_reads_idx_files(tiny_mnist):
    train = load_mnist(tiny_mnist, binarize=None)
    assert train.x.shape == (12, 784) and train.y.shape == (12,)
    assert 0.0 <= train.x.min() and train.x.max() <= 1.0 and train.binarize is None
    test = load_mnist(tiny_mnist, split="test", binarize="threshold", flatten=False)
    assert test.x.shape == (5, 1, 28, 28) and set(np.unique(test.x)) <= {0.0, 1.0}
    assert load_mnist(tiny_mnist).binarize == "dynamic"


def test_load_mnist_verifies_magic_numbers(tiny_mnist):
    _write_idx(tiny_mnist / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28)), 2049)
    with pytest.raises(ValueError, match="magic number"):
        load_mnist(tiny_mnist)


def test_load_mnist_bad_arguments(tiny_mnist, tmp_path):
    with pytest.raises(ValueError, match="binarize"):
        load_mnist(tiny_mnist, binarize="otsu")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tiny_mnist, split="valid")
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path / "nothing")


@pytest.mark.data
def test_real_mnist(shared_data):
    train = load_mnist(shared_data / "mnist", split="train", binarize=None)
    test = load_mnist(shared_data / "mnist", split="test", binarize=None)
    assert train.x.shape == (60000, 784) and test.x.shape == (10000, 784)
    assert train.x.mean() == pytest.approx(0.1306604763, abs=1e-6)
    assert np.bincount(test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.data
def test_real_binarized_mnist(shared_data):
    train = load_binarized_mnist(shared_data / "binarized_mnist", split="train")
    assert train.x.shape == (50000, 784) and set(np.unique(train.x)) == {0.0, 1.0}
    assert load_binarized_mnist(
        shared_data / "binarized_mnist" / "binarized_mnist.npz", split="test"
    ).x.shape == (10000, 784)


def test_load_array_npy_and_npz(tmp_path):
    x = np.random.default_rng(0).random((10, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    loaded = load_array(tmp_path / "x.npy")
    np.testing.assert_array_equal(loaded.x, x)
    assert loaded.image_shape == (1, 4, 4) and loaded.y is None
    np.savez(tmp_path / "xy.npz", X=x, y=np.arange(10))
    both = load_array(tmp_path / "xy.npz")
    assert both.y.tolist() == list(range(10))
    np.savez(tmp_path / "bad.npz", features=x)
    with pytest.raises(ValueError, match="'x' or 'X'"):
        load_array(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_array(tmp_path / "missing.npy")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=".npy or .npz"):
        load_array(tmp_path / "x.csv")


def test_loader_batches_whole_minibatches_reproducibly():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)

    def order(seed):
        loader = make_loader(
            x,
            y,
            batch_size=4,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        return [batch[1].tolist() for batch in loader]

    batches = order(0)
    assert len(batches) == 2 and all(len(b) == 4 for b in batches)
    assert order(0) == batches and order(1) != batches
    full = make_loader(x, batch_size=4, shuffle=False)
    assert [b[0].shape[0] for b in full] == [4, 4, 2]
    with pytest.raises(ValueError, match="same number of rows"):
        make_loader(x, torch.arange(3), batch_size=2, shuffle=False)


def test_tensor_batches_cover_every_row_once_per_pass_in_a_seeded_order():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    generator = torch.Generator().manual_seed(0)
    loader = TensorBatches(x, y, batch_size=3, shuffle=True, generator=generator)
    assert len(loader) == 4
    first = [b[1].tolist() for b in loader]
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(sum(first, [])) == list(range(10))
    second = [b[1].tolist() for b in loader]  # a fresh order each pass
    assert sorted(sum(second, [])) == list(range(10)) and second != first
    for xb, yb in loader:  # rows stay paired across tensors
        assert torch.equal(xb[:, 0].long(), yb)
    again = TensorBatches(
        x, y, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    assert [b[1].tolist() for b in again] == first
    # resuming: the generator's state gives the same next order
    state = generator.get_state()
    expected = [b[1].tolist() for b in loader]
    generator.set_state(state)
    assert [b[1].tolist() for b in loader] == expected


def test_tensor_batches_drop_last_keep_order_and_transform():
    x = torch.rand(10, 4)
    dropped = TensorBatches(x, batch_size=4, shuffle=True, drop_last=True)
    assert len(dropped) == 2 and [len(b[0]) for b in dropped] == [4, 4]
    ordered = list(TensorBatches(x, batch_size=4, shuffle=False))
    assert torch.equal(torch.cat([b[0] for b in ordered]), x)
    binarized = next(
        iter(TensorBatches(x, batch_size=10, shuffle=False, transform=DynamicBinarize()))
    )
    assert set(binarized[0].unique().tolist()) <= {0.0, 1.0}
    assert binarized[0].device == x.device


@pytest.mark.parametrize(
    ("tensors", "options", "words"),
    [
        ((), {"batch_size": 2}, "at least one tensor"),
        ((torch.zeros(4), torch.zeros(3)), {"batch_size": 2}, "tensor 1 has 3"),
        ((torch.zeros(4),), {"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_tensor_batches_refuse_bad_input(tensors, options, words):
    with pytest.raises(ValueError, match=words):
        TensorBatches(*tensors, shuffle=False, **options)


def test_dynamic_binarization_resamples_each_draw():
    x = torch.full((200, 50), 0.3)
    first, second = DynamicBinarize()(x), DynamicBinarize()(x)
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    assert float(first.mean()) == pytest.approx(0.3, abs=0.02)
    # grey levels 0 and 1 stay exactly 0 and 1; each pixel at its own rate; seeded draws repeat
    levels = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(20000, 1)
    rates = DynamicBinarize()(levels).mean(0)
    assert rates[0] == 0 and rates[-1] == 1
    torch.testing.assert_close(rates[1:4], torch.tensor([0.1, 0.5, 0.9]), atol=0.012, rtol=0)
    seeded = [DynamicBinarize()(x, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*seeded)


def test_keep_labels_spreads_the_kept_labels_over_the_classes():
    from bayesvae.data import keep_labels

    y = np.repeat(np.arange(4), 25)
    partial = keep_labels(y, 10, seed=0)
    kept = partial[partial >= 0]
    assert len(kept) == 10 and np.bincount(kept).tolist() == [3, 3, 2, 2]
    assert np.array_equal(partial[partial >= 0], y[partial >= 0])
    assert np.array_equal(partial, keep_labels(y, 10, seed=0))
    assert not np.array_equal(partial, keep_labels(y, 10, seed=1))
    assert (keep_labels(y, 0) == -1).all() and (keep_labels(y, 100) == y).all()
    with pytest.raises(ValueError, match=r"num_labelled must be in \[0, 100\]"):
        keep_labels(y, 101)
    with pytest.raises(ValueError, match="needs 2 rows of class 1"):
        keep_labels(np.array([0, 0, 0, 1]), 4)
    with pytest.raises(ValueError, match="integer labels"):
        keep_labels(np.array([0.5, 1.0]), 1)
    with pytest.raises(TypeError, match="num_labelled must be an integer"):
        keep_labels(y, 2.0)
