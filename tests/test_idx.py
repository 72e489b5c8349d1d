"""The IDX reader: round trips, and clear errors on damaged files (never a wrong array)."""

import numpy as np
import pytest

from dinv.experiments.idx import IdxError, read_idx, write_idx


@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_round_trip(tmp_path, suffix, dtype):
    """write_idx then read_idx gives the same values, shape and type, plain or gzipped."""
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)


def test_reads_the_mnist_label_layout_by_hand(tmp_path):
    """A hand-written label file (magic 0x00000801, count 3, then bytes) reads as [7, 2, 1]."""
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    np.testing.assert_array_equal(read_idx(path), [7, 2, 1])


@pytest.mark.parametrize("content, message", [
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "not an IDX file"),
    (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "unknown IDX data type"),
    (bytes([0, 0, 8, 2, 0, 0, 0, 1]), "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3]), "truncated or damaged"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]), "truncated or damaged"),
])
def test_damaged_files_raise(tmp_path, content, message):
    """Bad magic, unknown type, short header, missing or extra data: IdxError with a reason."""
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(IdxError, match=message):
        read_idx(path)


def test_truncated_gzip_raises(tmp_path):
    """A gzip stream cut in the middle is reported, not half-read."""
    path = tmp_path / "images.gz"
    write_idx(path, np.arange(1000, dtype=np.uint8).reshape(10, 100))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IdxError, match="download it again"):
        read_idx(path)


def test_missing_file_is_file_not_found(tmp_path):
    """A missing file raises FileNotFoundError (the CLI turns it into one line)."""
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing.gz")


def test_not_gzip_with_gz_suffix(tmp_path):
    """A plain file named .gz is reported as damaged."""
    path = tmp_path / "fake.gz"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(IdxError, match="damaged"):
        read_idx(path)
