"""Safe bytes and files: msgpack with an array extension, and atomic writes.

Arrays travel as a msgpack extension holding ``(dtype, shape, raw bytes)``; decoding
uses ``numpy.frombuffer`` after checking the dtype is a plain numeric one and the
byte count matches the shape, so loading never runs code (no pickle anywhere).
We use msgpack directly rather than srsly: it is the one format we need, it is
small and well kept, and it lets us own the array extension and its checks.
"""
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Dict, Union

import msgpack
import numpy

from .errors import SerializationError

__all__ = [
    "msgpack_dumps",
    "msgpack_loads",
    "dumps_with_checksum",
    "loads_with_checksum",
    "write_bytes_atomic",
    "read_bytes",
]

ARRAY_EXT = 42
TUPLE_EXT = 43
_ALLOWED_DTYPE_KINDS = "biuf"  # bool, signed int, unsigned int, float: never object ("O")
_MAX_RANK = 32


def _encode(obj: Any) -> Any:
    if isinstance(obj, numpy.ndarray) or type(obj).__module__.startswith("cupy"):
        array = obj.get() if not isinstance(obj, numpy.ndarray) else obj
        if array.dtype.kind not in _ALLOWED_DTYPE_KINDS:
            raise TypeError(f"cannot serialise an array of dtype {array.dtype}")
        if not array.flags.c_contiguous:
            array = array.copy(order="C")  # ascontiguousarray would turn 0-d into 1-d
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        header = [array.dtype.str, list(array.shape), array.tobytes()]
        return msgpack.ExtType(ARRAY_EXT, msgpack.packb(header, use_bin_type=True))
    if isinstance(obj, tuple):
        return msgpack.ExtType(TUPLE_EXT, msgpack_dumps(list(obj)))
    if isinstance(obj, numpy.generic):
        return obj.item()
    # strict_types sends subclasses here too (e.g. a Config dict, an IntEnum).
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, bytes):
        return bytes(obj)
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    raise TypeError(f"cannot serialise a value of type {type(obj).__name__}")


def _decode_array(payload: bytes) -> numpy.ndarray:
    header = msgpack.unpackb(payload, raw=False)
    if not (isinstance(header, list) and len(header) == 3):
        raise SerializationError("malformed array: expected [dtype, shape, data]")
    dtype_str, shape, data = header
    if not isinstance(dtype_str, str) or not isinstance(data, bytes) or not isinstance(shape, list):
        raise SerializationError("malformed array: wrong field types")
    try:
        dtype = numpy.dtype(dtype_str)
    except (TypeError, ValueError, SyntaxError) as error:  # numpy raises any of these
        raise SerializationError(f"malformed array: unknown dtype {dtype_str!r}") from error
    if dtype.kind not in _ALLOWED_DTYPE_KINDS or dtype.fields is not None:
        raise SerializationError(f"refusing array dtype {dtype_str!r}: only numeric data loads")
    if len(shape) > _MAX_RANK or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise SerializationError(f"malformed array: bad shape {shape!r}")
    expected = int(numpy.prod(shape, dtype="int64")) * dtype.itemsize
    if expected != len(data):
        raise SerializationError(
            f"malformed array: shape {tuple(shape)} of {dtype} needs {expected} bytes, got {len(data)}"
        )
    return numpy.frombuffer(data, dtype=dtype).reshape(shape)


def _ext_hook(code: int, payload: bytes) -> Any:
    if code == ARRAY_EXT:
        return _decode_array(payload)
    if code == TUPLE_EXT:
        return tuple(msgpack_loads(payload))
    raise SerializationError(f"unknown msgpack extension type {code}")


def msgpack_dumps(data: Any) -> bytes:
    """Encode `data` (dicts, lists, tuples, scalars, strings, bytes, numeric arrays)."""
    return msgpack.packb(data, default=_encode, use_bin_type=True, strict_types=True)


def msgpack_loads(data: bytes) -> Any:
    """Decode bytes from :func:`msgpack_dumps`; any malformed input raises SerializationError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(
            data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True
        )
    except SerializationError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as error:
        raise SerializationError(f"the data is not valid composa msgpack: {error}") from error


CHECKSUM_KEY = "checksum"


def dumps_with_checksum(data: Dict[str, Any]) -> bytes:
    """A msgpack map of `data` plus a ``"checksum"`` entry: CRC-32 of the encoded items.

    It is still plain msgpack (``msgpack.unpackb`` gives a dict), and
    :func:`loads_with_checksum` detects any flipped bit inside the values.
    """
    packer = msgpack.Packer(default=_encode, use_bin_type=True, strict_types=True)
    parts = [packer.pack_map_header(len(data) + 1)]
    checksum = 0
    for key, value in data.items():
        encoded = packer.pack(key) + packer.pack(value)
        checksum = zlib.crc32(encoded, checksum)
        parts.append(encoded)
    parts += [packer.pack(CHECKSUM_KEY), packer.pack(checksum)]
    return b"".join(parts)


def loads_with_checksum(data: bytes) -> Any:
    """Decode bytes from :func:`dumps_with_checksum`, verifying the checksum when present.

    Anything that is not a msgpack map is decoded as usual (so the caller can say
    what it expected); a map whose checksum does not match raises SerializationError.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"expected bytes, got {type(data).__name__}")
    unpacker = msgpack.Unpacker(
        ext_hook=_ext_hook, raw=False, strict_map_key=False, max_buffer_size=max(len(data), 1)
    )
    unpacker.feed(data)
    try:
        size = unpacker.read_map_header()
    except (ValueError, msgpack.UnpackException):
        return msgpack_loads(data)
    view = memoryview(data)
    try:
        result: Dict[Any, Any] = {}
        checksum = 0
        for _ in range(size):
            start = unpacker.tell()
            key = unpacker.unpack()
            result[key] = unpacker.unpack()
            if key != CHECKSUM_KEY:
                checksum = zlib.crc32(view[start : unpacker.tell()], checksum)
        if unpacker.tell() != len(data):
            raise SerializationError(f"{len(data) - unpacker.tell()} unexpected bytes after the data")
    except SerializationError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as error:
        raise SerializationError(f"the data is not valid composa msgpack: {error}") from error
    if CHECKSUM_KEY in result and result.pop(CHECKSUM_KEY) != checksum:
        raise SerializationError("checksum mismatch: the data is corrupted (a changed or damaged file?)")
    return result


def write_bytes_atomic(path: Union[str, Path], data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one.

    The bytes go to a temporary file in the same folder, are flushed and fsynced,
    and the temporary file is renamed over `path` (atomic on POSIX and Windows).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write model bytes to {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have given,
        # or keep the mode of the file it replaces, so other users can still read models.
        _set_mode(handle, path)
        with os.fdopen(handle, "wb") as file_:
            file_.write(data)
            file_.flush()
            os.fsync(file_.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)


def _set_mode(handle: int, path: Path) -> None:
    if not hasattr(os, "fchmod"):  # Windows: no POSIX modes to fix
        return
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o666 & ~_umask()
    os.fchmod(handle, mode)


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:  # Linux: read it without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def read_bytes(path: Union[str, Path], what: str = "model") -> bytes:
    """Read a file's bytes, with a clear error when it is missing or a directory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cannot load {what}: {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot load {what}: {path} is a directory, expected a file")
    return path.read_bytes()
