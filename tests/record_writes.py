"""Logs the files a rank of a distributed run writes (``composa train --code``), one log per rank.

With COMPOSA_WRITES_LOG=DIR in the environment, every file this process opens for writing
and every rename is appended to DIR/rank<RANK>.txt, through Python's audit hooks (the
real calls, observed). tests/test_distributed.py reads the logs to check that rank 0
alone writes a run's files. Without the variable, importing this file does nothing.
"""
import os
import sys
from typing import Any, Tuple

WRITING_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def start_logging(directory: str) -> None:
    """Append the path of each file this process opens for writing, or renames, to directory/rank<RANK>.txt."""
    log = os.open(os.path.join(directory, f"rank{os.environ.get('RANK', '0')}.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def record(event: str, args: Tuple[Any, ...]) -> None:
        path = written_path(event, args)
        if path is not None:
            os.write(log, f"{os.path.abspath(path)}\n".encode("utf8"))  # os.write raises no audit event: no recursion

    sys.addaudithook(record)


def written_path(event: str, args: Tuple[Any, ...]) -> Any:
    """The path an audit event writes to, or None for events that write no named file."""
    if event == "open" and isinstance(args[0], (str, os.PathLike)):
        path, mode, flags = args
        writes = any(letter in mode for letter in "wax+") if isinstance(mode, str) else bool(flags & WRITING_FLAGS)
        return path if writes else None
    if event == "os.rename":
        return args[1]
    return None


if os.environ.get("COMPOSA_WRITES_LOG"):
    start_logging(os.environ["COMPOSA_WRITES_LOG"])
