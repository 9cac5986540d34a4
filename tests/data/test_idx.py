"""IDX reader: header parsing, gzip or raw, clear errors."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from evo_ensembles.data import read_idx
from evo_ensembles.data.idx import parse_idx, write_idx
from evo_ensembles.errors import DataNotFoundError, UserError


def _handmade_idx(values: list[int], dims: tuple[int, ...]) -> bytes:
    # Built from the format's definition, independently of write_idx.
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + bytes(values)


def test_parses_handmade_header_and_shape(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(_handmade_idx(list(range(24)), (2, 3, 4)))
    arr = read_idx(path)
    assert arr.shape == (2, 3, 4) and arr.dtype == np.uint8
    assert arr[1, 2, 3] == 23 and arr[0, 1, 0] == 4
    assert arr.flags.writeable


@pytest.mark.parametrize("name", ["a-idx3-ubyte.gz", "a-idx3-ubyte"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_roundtrip_gz_and_raw(tmp_path, name, dtype):
    arr = np.arange(60).reshape(3, 4, 5)
    arr = (arr if dtype == np.uint8 else arr - 7).astype(dtype)
    path = write_idx(tmp_path / name, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_multibyte_values_are_big_endian():
    buf = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + struct.pack(">ii", 1, -2)
    assert parse_idx(buf).tolist() == [1, -2]


def test_gzip_detected_by_content_not_name(tmp_path):
    payload = _handmade_idx([5, 6, 7], (3,))
    (tmp_path / "gz-without-suffix").write_bytes(gzip.compress(payload))
    (tmp_path / "raw-with-suffix.gz").write_bytes(payload)
    assert read_idx(tmp_path / "gz-without-suffix").tolist() == [5, 6, 7]
    assert read_idx(tmp_path / "raw-with-suffix.gz").tolist() == [5, 6, 7]


def test_wrong_magic_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(UserError, match=r"bad\.idx is not an IDX file"):
        read_idx(path)


def test_unknown_type_code():
    with pytest.raises(UserError, match="unknown IDX element type 0x07"):
        parse_idx(bytes([0, 0, 7, 1, 0, 0, 0, 1, 0]))


@pytest.mark.parametrize("extra", [-1, 1])
def test_size_mismatch_is_reported(extra):
    buf = _handmade_idx(list(range(6)), (2, 3))
    buf = buf[:extra] if extra < 0 else buf + b"\x00"
    with pytest.raises(UserError, match=r"shape \(2, 3\).*truncated or corrupt"):
        parse_idx(buf, source="x.idx")


def test_truncated_header():
    with pytest.raises(UserError, match="truncated IDX header"):
        parse_idx(bytes([0, 0, 8, 3, 0, 0, 0, 1]))


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(_handmade_idx([1] * 100, (100,)))[:30])
    with pytest.raises(UserError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope-idx1-ubyte.gz"
    with pytest.raises(DataNotFoundError, match="nope-idx1-ubyte.gz"):
        read_idx(missing)
