"""Read IDX files (the MNIST / Fashion-MNIST format), gzipped or raw, without torchvision.

An IDX file is a 4-byte magic ``00 00 TT ND`` (TT: element type, ND: number of
dimensions), then ND big-endian uint32 sizes, then the elements in big-endian C order.

Examples:
    >>> from evo_ensembles.data import read_idx
    >>> images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    >>> images.shape, images.dtype
    ((10000, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, UserError

# IDX type codes → big-endian numpy dtypes (from the format's definition).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name).

    Examples:
        >>> read_bytes("train-labels-idx1-ubyte.gz")[:4]  # doctest: +SKIP
        b'\\x00\\x00\\x08\\x01'
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"data file not found: {path}")
    raw = path.read_bytes()
    # Sniff the content rather than trust the suffix: people gunzip files and keep names.
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path} is a corrupt or truncated gzip file ({e}); re-install it") from None


def parse_idx(buf: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a native-byte-order, writable numpy array.

    Examples:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
        array([7, 9], dtype=uint8)
    """
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise UserError(
            f"{source} is not an IDX file (bad magic {buf[:4].hex() or 'empty'}; "
            "expected 0000 followed by type and rank bytes)"
        )
    type_code, ndim = buf[2], buf[3]
    if type_code not in _IDX_DTYPES:
        raise UserError(f"{source}: unknown IDX element type 0x{type_code:02x}")
    if ndim == 0:
        raise UserError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise UserError(f"{source}: truncated IDX header ({len(buf)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    count = int(np.prod(dims, dtype=np.int64))
    expected = count * dtype.itemsize
    found = len(buf) - header
    if found != expected:
        raise UserError(
            f"{source}: IDX header says shape {dims} ({expected} data bytes) but the file has "
            f"{found}; it is truncated or corrupt"
        )
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=header).reshape(dims)
    # Copy into native order: frombuffer views are read-only and torch.from_numpy warns on them.
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array shaped as its header says.

    Missing files raise :class:`DataNotFoundError`; malformed ones :class:`UserError`.

    Examples:
        >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape
        (10000,)
    """
    return parse_idx(read_bytes(path), source=str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``); for tests and tools.

    Examples:
        >>> write_idx(tmp / "labels-idx1-ubyte.gz", np.arange(3, dtype=np.uint8))  # doctest: +SKIP
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise UserError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, codes[native], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path
