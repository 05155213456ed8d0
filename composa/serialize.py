"""Safe bytes and files: msgpack with array extensions, checksums, bounded decoding and atomic writes.

Two layouts, both plain msgpack (``msgpack.unpackb`` reads either as a map):

- **inline** (:func:`msgpack_dumps` / :func:`msgpack_loads`): arrays are an extension
  holding ``(dtype, shape, raw bytes)``. Small values use it: attrs, shim and optimizer
  state, the checkpoint, and composa's model bytes of format 1.
- **framed** (:func:`frame` / :func:`unframe`): a small header map in which every array
  is a reference extension ``[dtype, shape, segment, offset, digest]``, then a
  ``"checksum"`` of the header, then ``"data"``: a list of ``bin`` segments holding the
  raw array bytes, each array at a 64-byte aligned place. Writing copies each array's
  buffer once (into the output or straight into a file); reading makes each array a
  read-only ``numpy.frombuffer`` view of the input, after checking its digest.

Decoding never runs code (no pickle anywhere): dtypes come from a fixed list of plain
numeric ones, sizes are checked against the input before anything is allocated (a
header that claims 10^12 elements is refused at once), nesting depth is bounded (the
tuple extension cannot recurse the C stack away), and any malformed input raises
:class:`~composa.errors.SerializationError`. Digests are XXH3-64 (the ``xxhash``
package): it runs at memory speed, several times faster than CRC-32, so checking a
model costs less than copying it. We use msgpack directly rather than srsly: it is the
one format we need, it is small and well kept, and it lets us own the extensions.
"""
import contextlib
import math
import mmap
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

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
    "frame",
    "unframe",
    "Frame",
    "digest",
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
REF_EXT = 44  # framed array: [dtype, shape, segment, offset, digest]; the bytes live in "data"
# Plain little-endian numeric dtypes, the same on every machine (no long double, no object).
DTYPES = frozenset(
    ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
)
MAX_RANK = 32
MAX_DEPTH = 64  # containers inside containers, in any decoded value
MAX_EXT_DEPTH = 8  # tuples inside tuples: each level is a nested unpack on the C stack
MAX_SEGMENT = 2**32 - 1  # the largest msgpack bin
ALIGN = 64
MAX_ITEMS = 1 << 22  # per list or map: a 5-byte header cannot make us allocate more than 32 MB of slots
_LIMITS = dict(raw=False, strict_map_key=False, use_list=True, max_array_len=MAX_ITEMS, max_map_len=MAX_ITEMS)
_DECODE_ERRORS = (ValueError, TypeError, KeyError, OverflowError, msgpack.UnpackException, RecursionError)


def digest(buffer: Any) -> int:
    """The XXH3-64 digest of a buffer (bytes, memoryview, contiguous array)."""
    return xxhash.xxh3_64_intdigest(buffer)


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
    return memoryview(array.reshape(-1)).cast("B")


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
    for kind in (dict, list, str, bytes, bool, int, float):
        if isinstance(obj, kind):
            return kind(obj)
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


def _ext_hook(depth: int, refs: Optional["_Refs"] = None) -> Callable[[int, bytes], Any]:
    """The extension decoder at tuple nesting `depth`; with `refs`, framed array references too."""

    def hook(code: int, payload: bytes) -> Any:
        if code == ARRAY_EXT:
            return _decode_array(payload)
        if code == TUPLE_EXT:
            if depth >= MAX_EXT_DEPTH:
                raise SerializationError(f"tuples nested more than {MAX_EXT_DEPTH} deep")
            return tuple(_unpack(payload, depth + 1))
        if code == REF_EXT and refs is not None:
            return refs.add(payload)
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


def check_nesting(value: Any, max_depth: int = MAX_DEPTH, refs: Optional[List[Any]] = None) -> None:
    """Refuse containers nested deeper than `max_depth`; with `refs`, put each framed array in place."""
    stack = [(value, 1)] if isinstance(value, (dict, list, tuple)) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise SerializationError(f"the data nests containers more than {max_depth} deep")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            if isinstance(item, _Ref) and refs is not None:
                node[key] = refs[item.index]
            elif isinstance(item, (dict, list, tuple)):
                stack.append((item, depth + 1))


CHECKSUM_KEY = "checksum"


def dumps_with_checksum(data: Dict[str, Any]) -> bytes:
    """A msgpack map of `data` plus a ``"checksum"`` entry: CRC-32 of the encoded items (format 1)."""
    packer = msgpack.Packer(default=_encode, use_bin_type=True, strict_types=True)
    parts = [packer.pack_map_header(len(data) + 1)]
    checksum = 0
    for key, value in data.items():
        encoded = packer.pack(key) + packer.pack(value)
        checksum = zlib.crc32(encoded, checksum)
        parts.append(encoded)
    parts += [packer.pack(CHECKSUM_KEY), packer.pack(checksum)]
    return b"".join(parts)


def loads_with_checksum(data: Any) -> Any:
    """Decode bytes from :func:`dumps_with_checksum`, verifying the checksum when present.

    Anything that is not a msgpack map is decoded as usual (so the caller can say
    what it expected); a map whose checksum does not match raises SerializationError.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"expected bytes, got {type(data).__name__}")
    unpacker = msgpack.Unpacker(ext_hook=_ext_hook(0), max_buffer_size=max(len(data), 1), **_LIMITS)
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
    except _DECODE_ERRORS as error:
        raise SerializationError(f"the data is not valid composa msgpack: {error}") from error
    check_nesting(result)
    if CHECKSUM_KEY in result and result.pop(CHECKSUM_KEY) != checksum:
        raise SerializationError("checksum mismatch: the data is corrupted (a changed or damaged file?)")
    return result


# Framed msgpack: a header, then the arrays' bytes ------------------------------------------


class Frame(NamedTuple):
    """Encoded data as the buffers to write in order: the header, then padding and array bytes."""

    parts: List[Any]
    nbytes: int

    def to_bytes(self) -> bytes:
        """The whole frame as one bytes object (each array copied once)."""
        return b"".join(self.parts)


class _Layout:
    """Places arrays in segments while the header is packed: the ``default`` hook of the packer."""

    def __init__(self) -> None:
        self.segments: List[List[Any]] = []  # per segment: (offset, array bytes) in order
        self.ends: List[int] = []

    def __call__(self, obj: Any) -> Any:
        if not _is_array(obj):
            return _encode_value(obj, msgpack_dumps)
        array = portable_array(obj)
        data = byte_view(array)
        if len(data) > MAX_SEGMENT:
            raise TypeError(f"cannot serialise an array of {len(data)} bytes: the limit is 4 GiB")
        offset = _aligned(self.ends[-1]) if self.ends else 0
        if not self.ends or offset + len(data) > MAX_SEGMENT:
            self.segments.append([])
            self.ends.append(0)
            offset = 0
        self.segments[-1].append((offset, data))
        self.ends[-1] = offset + len(data)
        header = [array.dtype.str, list(array.shape), len(self.segments) - 1, offset, digest(data)]
        return msgpack.ExtType(REF_EXT, msgpack.packb(header))


def _aligned(position: int) -> int:
    return -(-position // ALIGN) * ALIGN


_ZEROS = bytes(ALIGN)


def frame(doc: Dict[str, Any]) -> Frame:
    """Encode a map as a framed document: arrays out of line, each written from its own buffer."""
    if not isinstance(doc, dict) or CHECKSUM_KEY in doc or "data" in doc:
        raise TypeError("frame() takes a dict without 'checksum' or 'data' keys")
    layout = _Layout()
    packer = msgpack.Packer(default=layout, use_bin_type=True, strict_types=True)
    header = [packer.pack_map_header(len(doc) + 2)]
    header += [packer.pack(key) + packer.pack(value) for key, value in doc.items()]
    covered = b"".join(header)
    head = covered + packer.pack(CHECKSUM_KEY) + b"\xcf" + digest(covered).to_bytes(8, "big")
    head += packer.pack("data") + packer.pack_array_header(len(layout.segments))
    parts: List[Any] = [head]
    position = len(head)
    for entries, end in zip(layout.segments, layout.ends):
        lead = _aligned(position + 5) - (position + 5)  # the bin header is 5 bytes
        parts.append(b"\xc6" + (lead + end).to_bytes(4, "big") + _ZEROS[:lead])
        cursor = 0
        for offset, data in entries:
            if offset > cursor:
                parts.append(_ZEROS[: offset - cursor])
            parts.append(data)
            cursor = offset + len(data)
        position += 5 + lead + end
    return Frame(parts, position)


class _Ref(NamedTuple):
    """A framed array reference met in the header, resolved once the segments are known."""

    index: int
    dtype: numpy.dtype
    shape: List[int]
    segment: int
    offset: int
    digest: int

    __hash__ = None  # type: ignore[assignment]  # a reference may not be a map key


class _Refs:
    """Collects the references of one header, in the order they were written."""

    def __init__(self) -> None:
        self.items: List[_Ref] = []

    def add(self, payload: bytes) -> _Ref:
        fields = msgpack.unpackb(payload, raw=False, max_array_len=MAX_RANK)
        if not (isinstance(fields, list) and len(fields) == 5):
            raise SerializationError("malformed array reference: expected [dtype, shape, segment, offset, digest]")
        dtype_str, shape, segment, offset, checksum = fields
        if not all(type(value) is int and value >= 0 for value in (segment, offset, checksum)):
            raise SerializationError("malformed array reference: segment, offset and digest are ints >= 0")
        dtype = checked_dtype(dtype_str)
        checked_nbytes(shape, dtype, MAX_SEGMENT)
        ref = _Ref(len(self.items), dtype, shape, segment, offset, checksum)
        self.items.append(ref)
        return ref


def is_framed(data: Any, first_key: str, version: int) -> bool:
    """Whether `data` starts like a framed map whose first entry is ``first_key: version``."""
    start = _map_header_size(data)
    expected = msgpack.packb(first_key) + msgpack.packb(version)
    return start is not None and bytes(data[start : start + len(expected)]) == expected


def _map_header_size(data: Any) -> Optional[int]:
    if not isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)) or len(data) < 1:
        return None
    first = data[0]
    return 1 if 0x80 <= first <= 0x8F else 3 if first == 0xDE else None


def unframe(data: Any, *, max_depth: int = MAX_DEPTH) -> Dict[str, Any]:
    """Decode :func:`frame` output; arrays are read-only views into `data`, each digest checked."""
    if not isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)):
        raise SerializationError(f"expected bytes, got {type(data).__name__}")
    refs = _Refs()
    try:
        view = memoryview(data).cast("B")
        doc, covered_end, checksum, data_start = _read_header(view, refs)
        segments = _read_segments(view, data_start)
    except SerializationError:
        raise
    except _DECODE_ERRORS as error:
        raise SerializationError(f"the data is not valid composa msgpack: {error}") from error
    if digest(view[:covered_end]) != checksum:
        raise SerializationError("checksum mismatch: the data is corrupted (a changed or damaged file?)")
    check_nesting(doc, max_depth, _resolve(refs.items, segments))
    return doc


def _read_header(view: memoryview, refs: _Refs) -> Any:
    """The header map (references unresolved), where the checksum starts, the checksum, where data starts."""
    reader = _HeaderReader(view, _ext_hook(0, refs))
    size = reader.next(reader.unpacker.read_map_header)
    if size < 2:
        raise SerializationError("malformed framed data: the map is too small")
    doc: Dict[str, Any] = {}
    for _ in range(size - 2):
        key = reader.next(reader.unpacker.unpack)
        if not isinstance(key, str) or key in doc or key in (CHECKSUM_KEY, "data"):
            raise SerializationError(f"malformed framed data: bad or repeated key {key!r}")
        doc[key] = reader.next(reader.unpacker.unpack)
    covered_end = reader.unpacker.tell()
    if reader.next(reader.unpacker.unpack) != CHECKSUM_KEY:
        raise SerializationError("malformed framed data: no checksum after the header")
    checksum = reader.next(reader.unpacker.unpack)
    if reader.next(reader.unpacker.unpack) != "data":
        raise SerializationError("malformed framed data: no data after the checksum")
    if type(checksum) is not int:
        raise SerializationError("malformed framed data: the checksum is not an int")
    return doc, covered_end, checksum, reader.unpacker.tell()


class _HeaderReader:
    """Feeds an Unpacker the header in growing chunks, so the array bytes after it are never copied."""

    def __init__(self, view: memoryview, ext_hook: Callable[[int, bytes], Any]) -> None:
        self.view = view
        self.fed = 0
        self.chunk = 1 << 16
        self.unpacker = msgpack.Unpacker(ext_hook=ext_hook, max_buffer_size=max(len(view), 1), **_LIMITS)

    def next(self, call: Callable[[], Any]) -> Any:
        while True:
            try:
                return call()
            except msgpack.OutOfData:
                if self.fed >= len(self.view):
                    raise SerializationError("truncated data: the header ends early") from None
                self.unpacker.feed(self.view[self.fed : self.fed + self.chunk])
                self.fed += self.chunk
                self.chunk *= 2


def _read_segments(view: memoryview, position: int) -> List[Any]:
    """The ``data`` list of bin32 segments at `position` (each with its zero lead); it must end the input."""
    count, position = _array_header(view, position)
    segments = []
    for _ in range(count):
        if bytes(view[position : position + 1]) != b"\xc6":
            raise SerializationError("malformed framed data: each data segment is a bin32")
        size = int.from_bytes(view[position + 1 : position + 5], "big")
        start = position + 5
        if start + size > len(view):
            raise SerializationError(f"truncated data: a segment of {size} bytes ends past the input")
        lead = min(_aligned(start) - start, size)
        _check_zeros(view[start : start + lead], "segment")
        segments.append(view[start + lead : start + size])
        position = start + size
    if position != len(view):
        raise SerializationError(f"{len(view) - position} unexpected bytes after the data")
    return segments


def _array_header(view: memoryview, position: int) -> Any:
    first = bytes(view[position : position + 1])
    if first and 0x90 <= first[0] <= 0x9F:
        return first[0] & 0x0F, position + 1
    if first == b"\xdc" and position + 3 <= len(view):
        return int.from_bytes(view[position + 1 : position + 3], "big"), position + 3
    raise SerializationError("malformed framed data: 'data' must be a list of segments")


def _resolve(refs: Sequence[_Ref], segments: List[memoryview]) -> List[numpy.ndarray]:
    """Each reference as a checked view into its segment; the layout must be exactly the writer's."""
    arrays = []
    segment, end = -1, 0  # where the writer was
    for ref in refs:
        if ref.segment == segment and ref.offset == _aligned(end):
            _check_zeros(segments[segment][end : ref.offset], f"array {ref.index}")
        elif not (ref.segment == segment + 1 < len(segments) and ref.offset == 0):
            raise SerializationError(f"malformed framed data: array {ref.index} is not where it should be")
        elif segment >= 0 and end != len(segments[segment]):
            raise SerializationError(f"malformed framed data: segment {segment} holds unexpected bytes")
        segment = ref.segment
        end = ref.offset + math.prod(ref.shape) * ref.dtype.itemsize
        data = segments[segment][ref.offset : end]
        if len(data) != end - ref.offset:
            raise SerializationError(f"truncated data: array {ref.index} ends past its segment")
        if digest(data) != ref.digest:
            raise SerializationError(
                f"checksum mismatch in array {ref.index}: the data is corrupted (a changed or damaged file?)"
            )
        arrays.append(numpy.frombuffer(data, dtype=ref.dtype).reshape(ref.shape))
    if segment + 1 != len(segments) or (segment >= 0 and end != len(segments[segment])):
        raise SerializationError("malformed framed data: the data segments hold unexpected bytes")
    return arrays


def _check_zeros(padding: memoryview, where: str) -> None:
    if len(padding) >= ALIGN or bytes(padding).strip(b"\x00"):
        raise SerializationError(f"malformed framed data: unexpected bytes before {where}")


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
    removed = []
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
