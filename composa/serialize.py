"""Safe bytes and files: msgpack with an array extension, checksums, bounded decoding and atomic writes.

Arrays travel as a msgpack extension holding ``(dtype, shape, raw bytes)``. Small values
(attrs, shim and optimizer state, checkpoints) use :func:`msgpack_dumps` /
:func:`msgpack_loads`. A model's bytes are a map with a ``"checksum"`` entry
(:func:`dump_parts_with_checksum` / :func:`loads_with_checksum`): written as a list of
buffers in which each large array is its own memory (one copy out, into the output bytes
or straight into a file), and read by :class:`ViewReader`, which returns every array as
a read-only ``numpy.frombuffer`` view of the input (no copy in).

Decoding never runs code (no pickle anywhere): dtypes come from a fixed list of plain
little-endian numeric ones, every declared size is checked against the bytes that remain
before anything is allocated (a header that claims 10^12 elements is refused at once),
nesting depth is bounded (a tuple inside a tuple cannot recurse the C stack away), and
any malformed input raises :class:`~composa.errors.SerializationError`. Model checksums
are XXH3-64 (the ``xxhash`` package), which runs at memory speed (about 11 GB/s here,
three times CRC-32), so checking a model costs less than copying it; CRC-32 checksums of
format 1 still verify. We use msgpack directly rather than srsly: it is the one format
we need, it is small and well kept, and it lets us own the array extension and its checks.
"""
import contextlib
import math
import mmap
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence, Union

import msgpack
import numpy
import xxhash

from .errors import SerializationError

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there, which is the lock we need
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "msgpack_dumps",
    "msgpack_loads",
    "dumps_with_checksum",
    "loads_with_checksum",
    "dump_parts_with_checksum",
    "ViewReader",
    "check_nesting",
    "write_bytes_atomic",
    "write_parts_atomic",
    "remove_stale_partials",
    "read_bytes",
    "mapped_file",
    "PARTIAL_SUFFIX",
]

ARRAY_EXT = 42  # inline array: [dtype, shape, raw bytes]
TUPLE_EXT = 43  # a tuple, so it comes back as a tuple
# Plain little-endian numeric dtypes, the same on every machine (no long double, no object).
DTYPES = frozenset(
    ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
)
MAX_RANK = 32
MAX_DEPTH = 64  # containers inside containers, in any decoded value
MAX_EXT_DEPTH = 8  # tuples inside tuples: each level is a nested unpack on the C stack
MAX_ITEMS = 1 << 22  # per list or map: a 5-byte header cannot make us allocate more than 32 MB of slots
_LIMITS = dict(raw=False, strict_map_key=False, use_list=True, max_array_len=MAX_ITEMS, max_map_len=MAX_ITEMS)
_DECODE_ERRORS = (ValueError, TypeError, KeyError, OverflowError, msgpack.UnpackException, RecursionError)


# Arrays ------------------------------------------------------------------------------------


def portable_array(obj: Any) -> numpy.ndarray:
    """`obj` (numpy or cupy) as a C-contiguous little-endian numpy array, copied only if it must be."""
    array = obj if isinstance(obj, numpy.ndarray) else obj.get()
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    if array.dtype.str not in DTYPES:
        raise TypeError(f"cannot serialise an array of dtype {array.dtype}: only plain numeric dtypes")
    if not array.flags.c_contiguous:
        array = array.copy(order="C")  # ascontiguousarray would turn 0-d into 1-d
    return array


def byte_view(array: numpy.ndarray) -> memoryview:
    """The raw bytes of a C-contiguous array, without copying them."""
    return array.reshape(-1).data.cast("B")


def _is_array(obj: Any) -> bool:
    return isinstance(obj, numpy.ndarray) or type(obj).__module__.startswith("cupy")


def checked_dtype(dtype_str: Any) -> numpy.dtype:
    """The numpy dtype named by `dtype_str` if it is one of :data:`DTYPES`."""
    if not isinstance(dtype_str, str) or len(dtype_str) > 16:
        raise SerializationError(f"malformed array: bad dtype {dtype_str!r}")
    try:
        dtype = numpy.dtype(dtype_str)
    except (TypeError, ValueError, SyntaxError) as error:  # numpy raises any of these
        raise SerializationError(f"malformed array: unknown dtype {dtype_str!r}") from error
    if dtype.str not in DTYPES:
        raise SerializationError(f"refusing array dtype {dtype_str!r}: only numeric data loads (plain, little-endian)")
    return dtype


def checked_nbytes(shape: Any, dtype: numpy.dtype, available: int, exact: bool = False) -> int:
    """The byte size of an array of `shape`, refused if malformed or more than the `available` bytes.

    Only the shape is looked at, in Python ints, so a shape that claims 10^12 elements is
    refused before anything is allocated.
    """
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise SerializationError(f"malformed array: bad shape {shape!r}")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise SerializationError(f"malformed array: bad shape {shape!r}")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if nbytes > available or exact and nbytes != available:
        raise SerializationError(
            f"malformed array: shape {tuple(shape)} of {dtype} needs {nbytes} bytes, got {available}"
        )
    return nbytes


# Inline msgpack -----------------------------------------------------------------------------


def _encode(obj: Any) -> Any:
    if _is_array(obj):
        array = portable_array(obj)
        header = [array.dtype.str, list(array.shape), array.tobytes()]
        return msgpack.ExtType(ARRAY_EXT, msgpack.packb(header, use_bin_type=True))
    return _encode_value(obj, msgpack_dumps)


def _encode_value(obj: Any, dumps: Callable[[Any], bytes]) -> Any:
    if isinstance(obj, tuple):
        return msgpack.ExtType(TUPLE_EXT, dumps(list(obj)))
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
    header = msgpack.unpackb(payload, raw=False, max_array_len=MAX_RANK)
    if not (isinstance(header, list) and len(header) == 3):
        raise SerializationError("malformed array: expected [dtype, shape, data]")
    dtype_str, shape, data = header
    if not isinstance(data, bytes):
        raise SerializationError("malformed array: wrong field types")
    dtype = checked_dtype(dtype_str)
    checked_nbytes(shape, dtype, len(data), exact=True)
    return numpy.frombuffer(data, dtype=dtype).reshape(shape)


def _ext_hook(depth: int) -> Callable[[int, bytes], Any]:
    """The extension decoder at tuple nesting `depth` (each level is a nested unpack on the C stack)."""

    def hook(code: int, payload: bytes) -> Any:
        if code == ARRAY_EXT:
            return _decode_array(payload)
        if code == TUPLE_EXT:
            if depth >= MAX_EXT_DEPTH:
                raise SerializationError(f"tuples nested more than {MAX_EXT_DEPTH} deep")
            return tuple(_unpack(payload, depth + 1))
        raise SerializationError(f"unknown msgpack extension type {code}")

    return hook


def _unpack(data: Any, depth: int) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook(depth), **_LIMITS)


def msgpack_dumps(data: Any) -> bytes:
    """Encode `data` (dicts, lists, tuples, scalars, strings, bytes, numeric arrays)."""
    return msgpack.packb(data, default=_encode, use_bin_type=True, strict_types=True)


def msgpack_loads(data: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode bytes from :func:`msgpack_dumps`; any malformed input raises SerializationError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"expected bytes, got {type(data).__name__}")
    try:
        value = _unpack(data, 0)
    except SerializationError:
        raise
    except _DECODE_ERRORS as error:
        raise SerializationError(f"the data is not valid composa msgpack: {error}") from error
    check_nesting(value, max_depth)
    return value


def check_nesting(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Refuse containers nested deeper than `max_depth` (walked with a stack, not recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list, tuple)) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise SerializationError(f"the data nests containers more than {max_depth} deep")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for _, item in items:
            if isinstance(item, (dict, list, tuple)):
                stack.append((item, depth + 1))


CHECKSUM_KEY = "checksum"
XXH3 = "xxh3_64"  # the checksum entry of format 2: [XXH3, digest]; format 1 holds a bare CRC-32 int


def dumps_with_checksum(data: Dict[str, Any], *, algorithm: str = "crc32") -> bytes:
    """A msgpack map of `data` plus a ``"checksum"`` entry over the encoded items.

    It is still plain msgpack (``msgpack.unpackb`` gives a dict), and
    :func:`loads_with_checksum` detects any flipped bit inside the values.
    """
    return b"".join(dump_parts_with_checksum(data, algorithm=algorithm))


def dump_parts_with_checksum(data: Dict[str, Any], *, algorithm: str = XXH3) -> List[Any]:
    """:func:`dumps_with_checksum` as the buffers to write in order; each large array is its own buffer.

    Writing the parts copies every array once, straight from its memory (``b"".join``
    for bytes, one ``write`` each for a file): nothing is packed twice.
    """
    packer = msgpack.Packer(default=_encode, use_bin_type=True, strict_types=True)
    parts: List[Any] = []
    for key, value in data.items():
        parts.append(packer.pack(key))
        _pack_parts(value, packer, parts)
    hasher = xxhash.xxh3_64() if algorithm == XXH3 else None
    checksum = 0
    for part in parts:
        if hasher is not None:
            hasher.update(part)
        else:
            checksum = zlib.crc32(part, checksum)
    stored = checksum if hasher is None else [XXH3, hasher.intdigest()]
    ending = packer.pack(CHECKSUM_KEY) + packer.pack(stored)
    return [packer.pack_map_header(len(data) + 1), *parts, ending]


LARGE_ARRAY = 1 << 16  # arrays of at least this many bytes are written from their own buffer


def _pack_parts(value: Any, packer: Any, parts: List[Any]) -> None:
    """Append the msgpack encoding of `value` to `parts`, as ``packer.pack(value)`` would write it."""
    if type(value) is dict:
        parts.append(packer.pack_map_header(len(value)))
        for key, item in value.items():
            parts.append(packer.pack(key))
            _pack_parts(item, packer, parts)
    elif type(value) is list:
        parts.append(packer.pack_array_header(len(value)))
        for item in value:
            _pack_parts(item, packer, parts)
    elif _is_array(value) and value.nbytes >= LARGE_ARRAY:
        array = portable_array(value)
        data = byte_view(array)
        prefix = b"\x93" + packer.pack(array.dtype.str) + packer.pack(list(array.shape)) + _bin_header(len(data))
        parts.append(_ext_header(len(prefix) + len(data)) + prefix)
        parts.append(data)
    else:
        parts.append(packer.pack(value))


def _bin_header(size: int) -> bytes:
    if size > 0xFFFFFFFF:
        raise TypeError(f"cannot serialise an array of {size} bytes: msgpack holds at most 4 GiB in one value")
    return b"\xc6" + size.to_bytes(4, "big")  # size >= LARGE_ARRAY, so msgpack writes bin32 too


def _ext_header(size: int) -> bytes:
    if size > 0xFFFFFFFF:
        raise TypeError(f"cannot serialise an array of {size} bytes: msgpack holds at most 4 GiB in one value")
    return b"\xc9" + size.to_bytes(4, "big") + bytes([ARRAY_EXT])


def loads_with_checksum(data: Any) -> Any:
    """Decode bytes from :func:`dumps_with_checksum`, verifying the checksum when present.

    Arrays come back as read-only ``numpy.frombuffer`` views into `data` (nothing is
    copied). Anything that is not a msgpack map is decoded as usual (so the caller can
    say what it expected); a map whose checksum does not match raises SerializationError.
    """
    reader = ViewReader(data)
    if not reader.at_map():
        return reader.whole()
    result: Dict[Any, Any] = {}
    spans = []
    stored: Any = None
    for _ in range(reader.map_header()):
        start = reader.position
        key = reader.value(1)
        value = reader.value(1)
        if type(key) is str and key == CHECKSUM_KEY:
            stored = value
        else:
            spans.append(reader.view[start : reader.position])
            reader.insert(result, key, value)
    reader.check_end()
    if stored is not None and _checksum(stored, spans) != stored:
        raise SerializationError("checksum mismatch: the data is corrupted (a changed or damaged file?)")
    return result


def _checksum(stored: Any, spans: List[memoryview]) -> Any:
    """The checksum of `spans`, in the form of `stored`: a CRC-32 int, or ``[XXH3, digest]``."""
    if type(stored) is int:
        checksum = 0
        for span in spans:
            checksum = zlib.crc32(span, checksum)
        return checksum
    if isinstance(stored, list) and len(stored) == 2 and type(stored[0]) is str and type(stored[1]) is int:
        if stored[0] != XXH3:
            raise SerializationError(f"unknown checksum algorithm {stored[0]!r}")
        hasher = xxhash.xxh3_64()
        for span in spans:
            hasher.update(span)
        return [XXH3, hasher.intdigest()]
    raise SerializationError(f"malformed checksum entry {stored!r}")


class ViewReader:
    """A msgpack decoder over a buffer that returns arrays as views into it, with every size bounded.

    Every length is checked against the bytes that remain before anything is allocated,
    containers nest at most :data:`MAX_DEPTH` deep (tuples included), and any malformed
    input raises SerializationError. The one decoder of composa's model bytes (formats 1 and 2).
    """

    def __init__(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)):
            raise SerializationError(f"expected bytes, got {type(data).__name__}")
        self.view = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
        self.position = 0

    def at_map(self) -> bool:
        """Whether the next value is a map."""
        return self.position < len(self.view) and (0x80 <= self.view[self.position] <= 0x8F or self.view[self.position] in (0xDE, 0xDF))

    def map_header(self) -> int:
        """The item count of the map that starts here."""
        first = self._byte()
        size = first & 0x0F if first <= 0x8F else self._uint(2 if first == 0xDE else 4)
        return self._count(size, 2)

    def whole(self) -> Any:
        """The one value the buffer holds, which must end where the buffer does."""
        value = self.value(1)
        self.check_end()
        return value

    def check_end(self) -> None:
        """Refuse bytes after the value."""
        if self.position != len(self.view):
            raise SerializationError(f"{len(self.view) - self.position} unexpected bytes after the data")

    def insert(self, mapping: Dict[Any, Any], key: Any, value: Any) -> None:
        """``mapping[key] = value``, refusing keys that cannot be map keys."""
        try:
            mapping[key] = value
        except TypeError as error:  # an unhashable key, e.g. a list
            raise SerializationError(f"malformed map key {key!r}") from error

    def value(self, depth: int) -> Any:
        """The value that starts here; `depth` counts the containers it is inside (1 at the top)."""
        first = self._byte()
        if first <= 0x7F or first >= 0xE0:
            return first if first <= 0x7F else first - 0x100
        if first <= 0x8F:
            return self._map(first & 0x0F, depth)
        if first <= 0x9F:
            return self._list(first & 0x0F, depth)
        if first <= 0xBF:
            return self._str(first & 0x1F)
        if first in _SIMPLE:
            return _SIMPLE[first]
        kind, size = _SIZED[first] if first in _SIZED else ("bad", 0)
        if kind == "uint":
            return self._uint(size)
        if kind == "int":
            return int.from_bytes(self._take(size), "big", signed=True)
        if kind == "float":
            return struct.unpack(">f" if size == 4 else ">d", self._take(size))[0]
        if kind in ("str", "bin", "ext", "list", "map"):
            return self._sized(kind, self._uint(size), depth)
        if kind == "fixext":
            return self._ext(size, depth)
        raise SerializationError(f"malformed msgpack: byte 0x{first:02x} at {self.position - 1}")

    def _sized(self, kind: str, size: int, depth: int) -> Any:
        if kind == "str":
            return self._str(size)
        if kind == "bin":
            return bytes(self._take(size))
        if kind == "ext":
            return self._ext(size, depth)
        return self._list(size, depth) if kind == "list" else self._map(size, depth)

    def _byte(self) -> int:
        if self.position >= len(self.view):
            raise SerializationError("truncated data: it ends in the middle of a value")
        self.position += 1
        return self.view[self.position - 1]

    def _take(self, size: int) -> memoryview:
        end = self.position + size
        if end > len(self.view):
            raise SerializationError(f"truncated data: a value of {size} bytes ends past the input")
        chunk = self.view[self.position : end]
        self.position = end
        return chunk

    def _uint(self, size: int) -> int:
        return int.from_bytes(self._take(size), "big")

    def _count(self, size: int, min_bytes_each: int) -> int:
        """An item count, refused when the remaining bytes cannot hold that many items."""
        if size > MAX_ITEMS or size * min_bytes_each > len(self.view) - self.position:
            raise SerializationError(f"malformed msgpack: a container claims {size} items, more than the data holds")
        return size

    def _nested(self, depth: int) -> int:
        """The depth inside a container at `depth`; a container at depth MAX_DEPTH is the deepest allowed."""
        if depth > MAX_DEPTH:
            raise SerializationError(f"the data nests containers more than {MAX_DEPTH} deep")
        return depth + 1

    def _list(self, size: int, depth: int) -> List[Any]:
        inner = self._nested(depth)
        return [self.value(inner) for _ in range(self._count(size, 1))]

    def _map(self, size: int, depth: int) -> Dict[Any, Any]:
        inner = self._nested(depth)
        result: Dict[Any, Any] = {}
        for _ in range(self._count(size, 2)):
            key = self.value(inner)
            self.insert(result, key, self.value(inner))
        return result

    def _str(self, size: int) -> str:
        try:
            return str(self._take(size), "utf-8")
        except UnicodeDecodeError as error:
            raise SerializationError(f"malformed msgpack: a string is not UTF-8 ({error})") from error

    def _ext(self, size: int, depth: int) -> Any:
        code = self._byte()
        code = code - 0x100 if code >= 0x80 else code  # the type byte is signed
        payload = ViewReader(self._take(size))
        if code == ARRAY_EXT:
            return payload._array()
        if code == TUPLE_EXT:
            items = payload.value(self._nested(depth))
            payload.check_end()
            if not isinstance(items, list):
                raise SerializationError("malformed tuple: expected a list inside")
            return tuple(items)
        raise SerializationError(f"unknown msgpack extension type {code}")

    def _array(self) -> numpy.ndarray:
        """The ``[dtype, shape, raw bytes]`` payload as a read-only view of the raw bytes."""
        if self._byte() != 0x93:
            raise SerializationError("malformed array: expected [dtype, shape, data]")
        dtype_str, shape = self.value(MAX_DEPTH - 1), self.value(MAX_DEPTH - 2)
        first = self._byte()
        if first not in (0xC4, 0xC5, 0xC6):
            raise SerializationError("malformed array: wrong field types")
        data = self._take(self._uint(1 << (first - 0xC4)))
        self.check_end()
        dtype = checked_dtype(dtype_str)
        checked_nbytes(shape, dtype, len(data), exact=True)
        return numpy.frombuffer(data, dtype=dtype).reshape(shape)


_SIMPLE = {0xC0: None, 0xC2: False, 0xC3: True}
_SIZED = {
    0xC4: ("bin", 1), 0xC5: ("bin", 2), 0xC6: ("bin", 4),
    0xC7: ("ext", 1), 0xC8: ("ext", 2), 0xC9: ("ext", 4),
    0xCA: ("float", 4), 0xCB: ("float", 8),
    0xCC: ("uint", 1), 0xCD: ("uint", 2), 0xCE: ("uint", 4), 0xCF: ("uint", 8),
    0xD0: ("int", 1), 0xD1: ("int", 2), 0xD2: ("int", 4), 0xD3: ("int", 8),
    0xD4: ("fixext", 1), 0xD5: ("fixext", 2), 0xD6: ("fixext", 4), 0xD7: ("fixext", 8), 0xD8: ("fixext", 16),
    0xD9: ("str", 1), 0xDA: ("str", 2), 0xDB: ("str", 4),
    0xDC: ("list", 2), 0xDD: ("list", 4), 0xDE: ("map", 2), 0xDF: ("map", 4),
}


# Files ----------------------------------------------------------------------------------


PARTIAL_SUFFIX = ".composa-partial"


def write_bytes_atomic(path: Union[str, Path], data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    write_parts_atomic(path, [data])


def write_parts_atomic(path: Union[str, Path], parts: Sequence[Any]) -> None:
    """Write the buffers `parts` in order to `path`, atomically, without joining them first.

    They go to a temporary file ``.NAME.XXXX.composa-partial`` in the same folder, are
    flushed and fsynced, and the temporary file is renamed over `path` (atomic on POSIX
    and Windows). The writer holds a lock on its temporary file, so a save can tell the
    partial files of writers that died (kill -9, power loss) from those of running ones,
    and removes the former.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write model bytes to {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    handle, temp_name = _locked_tempfile(path)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have given,
        # or keep the mode of the file it replaces, so other users can still read models.
        _set_mode(handle, path)
        with os.fdopen(handle, "wb") as file_:
            for part in parts:
                file_.write(part)
            file_.flush()
            os.fsync(file_.fileno())
            if fcntl is not None:
                os.replace(temp_name, path)  # while still locked, so no cleaner can take it
        if fcntl is None:
            os.replace(temp_name, path)  # Windows cannot rename an open file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)


def _locked_tempfile(path: Path) -> Any:
    """A new temporary file next to `path`, locked by this process (retried if a cleaner took it)."""
    while True:
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
        if fcntl is None:
            return handle, temp_name
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(handle).st_ino == os.stat(temp_name).st_ino:
                return handle, temp_name
        except OSError:
            pass  # a cleaner opened it between mkstemp and flock, and will delete it
        os.close(handle)


def remove_stale_partials(directory: Union[str, Path]) -> List[str]:
    """Delete the partial files in `directory` left by writers that died; returns their names."""
    removed: List[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(PARTIAL_SUFFIX) and _remove_if_unlocked(entry.path):
            removed.append(entry.name)
    return removed


def _remove_if_unlocked(path: str) -> bool:
    if fcntl is None:
        try:
            os.unlink(path)  # fails while the writer still has the file open
        except OSError:
            return False
        return True
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # its writer is alive and holds the lock
        os.close(handle)
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    finally:
        os.close(handle)
    return True


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


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"cannot load {what}: {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot load {what}: {path} is a directory, expected a file")


def read_bytes(path: Union[str, Path], what: str = "model") -> bytes:
    """Read a file's bytes, with a clear error when it is missing or a directory."""
    path = Path(path)
    _check_file(path, what)
    return path.read_bytes()


MAP_AT_LEAST = 1 << 16  # smaller files are simply read


@contextlib.contextmanager
def mapped_file(path: Union[str, Path], what: str = "model") -> Iterator[Any]:
    """The file's bytes as a read-only buffer: a memory map for large files (no copy), else bytes."""
    path = Path(path)
    _check_file(path, what)
    with open(path, "rb") as file_:
        size = os.fstat(file_.fileno()).st_size
        if size < MAP_AT_LEAST:
            yield file_.read()
            return
        mapping = mmap.mmap(file_.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        if hasattr(mapping, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
            mapping.madvise(mmap.MADV_SEQUENTIAL)
        yield mapping
    finally:
        with contextlib.suppress(BufferError):  # a view still alive (in a traceback, say): the GC closes it
            mapping.close()
