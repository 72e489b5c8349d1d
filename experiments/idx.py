"""Reading IDX files (the MNIST and Fashion-MNIST format), plain or gzipped.

An IDX file is a big-endian header -- two zero bytes, a type code, the number
of dimensions, then one 4-byte size per dimension -- followed by the data.
`read_idx` checks every part of it and raises `IdxError` naming the file and
what is wrong, so a truncated download or a wrong file never becomes an array.
"""

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type codes and their big-endian numpy types."""


class IdxError(ValueError):
    """A file is not a complete, valid IDX file."""


def read_idx(path):
    """Read one IDX file (``.gz`` is decompressed) into a numpy array.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray
        In native byte order, shape as the header says.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    IdxError
        When the header is malformed or the data are shorter or longer than
        the header says.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise IdxError(f"{path}: cannot be read ({exc}); the file is damaged, download "
                       "it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{path}: not an IDX file (it must start with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in TYPES:
        raise IdxError(f"{path}: unknown IDX data type 0x{code:02x}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise IdxError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    data = raw[4 + 4 * ndim:]
    if len(data) != expected:
        raise IdxError(f"{path}: the header promises {expected} bytes of data for shape "
                       f"{shape}, the file holds {len(data)}; it is truncated or damaged, "
                       "download it again")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise IdxError(f"IDX cannot hold arrays of type {array.dtype}")
    header = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    payload = header + array.astype(TYPES[codes[native]]).tobytes()
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(payload)
