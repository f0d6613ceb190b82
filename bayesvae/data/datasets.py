"""Data sets: the embedded default (scikit-learn's digits), MNIST from its standard IDX files,
the fixed binarized MNIST split, and arrays from ``.npy``/``.npz`` files."""

from __future__ import annotations

import gzip
import logging
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayesvae.data.validation import load_numpy

__all__ = [
    "ImageData",
    "load_digits",
    "load_mnist",
    "load_binarized_mnist",
    "load_array",
    "keep_labels",
    "MNIST_FILES",
    "MNIST_URL",
]

logger = logging.getLogger(__name__)

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
_BINARIZE_CHOICES = ("dynamic", "threshold", None)


@dataclass(frozen=True)
class ImageData:
    """Images with optional labels.

    Attributes:
        x: ``(N, D)`` float32 in [0, 1] (or ``(N, C, H, W)`` with ``flatten=False``).
        y: ``(N,)`` int64 labels, or ``None``.
        image_shape: ``(C, H, W)`` of one image, for plotting and convolutional models.
        binarize: ``"dynamic"`` when the data should be resampled to {0, 1} every epoch.
    """

    x: np.ndarray
    y: np.ndarray | None
    image_shape: tuple[int, int, int]
    binarize: str | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_digits(*, flatten: bool = True) -> ImageData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), scaled to [0, 1].

    The embedded default: needs no download. ``x``: ``(1797, 64)`` or ``(1797, 1, 8, 8)``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return ImageData(x=x, y=bunch.target.astype(np.int64), image_shape=(1, 8, 8))


def _read_idx(path: Path, magic: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        found = struct.unpack(">I", handle.read(4))[0]
        if found != magic:
            raise ValueError(
                f"{path} is not an IDX {'image' if magic == _IMAGES_MAGIC else 'label'} file: "
                f"magic number {found}, expected {magic}."
            )
        ndim = magic & 0xFF
        dims = struct.unpack(">" + "I" * ndim, handle.read(4 * ndim))
        data = np.frombuffer(handle.read(), dtype=np.uint8)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {dims}, found {data.size} bytes.")
    return data.reshape(dims)


def _download_mnist(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES.values():
        target = root / name
        if target.exists():
            continue
        logger.info("downloading %s%s", MNIST_URL, name)
        tmp = target.with_suffix(target.suffix + ".part")
        urllib.request.urlretrieve(MNIST_URL + name, tmp)  # noqa: S310 (fixed https URL)
        os.replace(tmp, target)


def load_mnist(
    root: str | os.PathLike[str],
    *,
    split: str = "train",
    binarize: str | None = "dynamic",
    flatten: bool = True,
    download: bool = False,
) -> ImageData:
    """MNIST from the four standard IDX ``.gz`` files in ``root`` (magic numbers verified).

    Args:
        root: folder holding ``train-images-idx3-ubyte.gz`` and the three other files.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        binarize: ``"dynamic"`` (grey levels kept; the loader resamples {0, 1} pixels every epoch),
            ``"threshold"`` (pixel > 0.5), or ``None`` (grey levels in [0, 1]).
        flatten: ``x`` as ``(N, 784)`` if true, else ``(N, 1, 28, 28)``.
        download: fetch missing files from the public mirror first (needs network).
    """
    from bayesvae.data.validation import check_choice

    check_choice("split", split, ("train", "test"))
    if binarize not in _BINARIZE_CHOICES:
        raise ValueError(f"unknown binarize {binarize!r}; expected 'dynamic', 'threshold' or None.")
    root = Path(root)
    if download:
        _download_mnist(root)
    images_path = root / MNIST_FILES[f"{split}_images"]
    labels_path = root / MNIST_FILES[f"{split}_labels"]
    for path in (images_path, labels_path):
        if not path.exists():
            raise FileNotFoundError(
                f"MNIST file {path} not found; pass the folder holding the IDX .gz files "
                "or download=True when online."
            )
    images = _read_idx(images_path, _IMAGES_MAGIC)
    labels = _read_idx(labels_path, _LABELS_MAGIC).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} has {images.shape[0]} images but {labels.shape[0]} labels."
        )
    x = images.astype(np.float32) / 255.0
    if binarize == "threshold":
        x = (x > 0.5).astype(np.float32)
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, 28, 28)
    return ImageData(
        x=x,
        y=labels,
        image_shape=(1, 28, 28),
        binarize="dynamic" if binarize == "dynamic" else None,
    )


def load_binarized_mnist(path: str | os.PathLike[str], *, split: str = "train") -> ImageData:
    """The fixed binarized MNIST (Larochelle & Murray; 50k/10k/10k) from one ``.npz``.

    The archive holds ``train``, ``valid`` and ``test`` arrays of shape ``(N, 784)`` in {0, 1}.
    ``path`` may be the file or the folder holding ``binarized_mnist.npz``. No labels.
    """
    from bayesvae.data.validation import check_choice

    check_choice("split", split, ("train", "valid", "test"))
    path = Path(path)
    if path.is_dir():
        path = path / "binarized_mnist.npz"
    if not path.exists():
        raise FileNotFoundError(f"binarized MNIST archive {path} not found.")
    with load_numpy(path) as archive:
        x = archive[split].astype(np.float32)
    return ImageData(x=x, y=None, image_shape=(1, 28, 28))


def load_array(path: str | os.PathLike[str], *, key: str | None = None) -> ImageData:
    """Load data from a ``.npy`` file or a ``.npz`` archive (arrays ``x``/``X`` and optional ``y``).

    ``x`` may be ``(N, D)`` or ``(N, C, H, W)``; square ``D`` is shown as a ``sqrt(D)`` image.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist.")
    y = None
    if path.suffix == ".npy":
        x = load_numpy(path)
    elif path.suffix == ".npz":
        with load_numpy(path) as archive:
            names = list(archive.keys())
            x_key = key or next((k for k in ("x", "X", "data") if k in names), None)
            if x_key is None or x_key not in names:
                raise ValueError(
                    f"{path} has arrays {names}; expected one named 'x' or 'X' (or pass key=)."
                )
            x = archive[x_key]
            y_key = next((k for k in ("y", "Y", "labels") if k in names), None)
            y = archive[y_key].astype(np.int64) if y_key else None
    else:
        raise ValueError(f"data file {path} must end in .npy or .npz, got {path.suffix!r}.")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        image_shape = tuple(int(s) for s in x.shape[1:])
    elif x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        image_shape = (1, side, side) if side * side == x.shape[1] else (1, 1, int(x.shape[1]))
    else:
        raise ValueError(f"{path}: x must have shape (N, D) or (N, C, H, W), got {x.shape}.")
    return ImageData(x=x, y=y, image_shape=image_shape)  # type: ignore[arg-type]


def keep_labels(y: Any, num_labelled: int, *, seed: int = 0) -> np.ndarray:
    """Labels ``y: (N,)`` with all but ``num_labelled`` hidden as ``-1`` (semi-supervised
    training), the kept ones spread evenly over the classes (as in Kingma et al. 2014; a
    remainder goes to the first classes) and drawn with ``seed``."""
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y must be integer labels (N,), got {labels.dtype} {labels.shape}.")
    if isinstance(num_labelled, bool) or not isinstance(num_labelled, (int, np.integer)):
        raise TypeError(f"num_labelled must be an integer, got {num_labelled!r}.")
    classes = np.unique(labels)
    if not 0 <= num_labelled <= labels.size:
        raise ValueError(f"num_labelled must be in [0, {labels.size}], got {num_labelled}.")
    rng = np.random.default_rng(seed)
    share = [
        num_labelled // len(classes) + (i < num_labelled % len(classes))
        for i in range(len(classes))
    ]
    kept = []
    for label, count in zip(classes, share, strict=True):
        rows = np.flatnonzero(labels == label)
        if count > len(rows):
            raise ValueError(
                f"num_labelled={num_labelled} needs {count} rows of class {label}, which has "
                f"{len(rows)}."
            )
        kept.append(rng.choice(rows, count, replace=False))
    partial = np.full(labels.shape, -1, dtype=np.int64)
    index = np.concatenate(kept) if kept else np.array([], dtype=np.int64)
    partial[index] = labels[index]
    return partial
