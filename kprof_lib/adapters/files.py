"""Writing files so that a reader sees all of them or none: used by the local profile store (a
profile and its metadata file), the spool (a profile waiting for S3) and the capture history file
of the single-target runtimes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(
    files: list[tuple[Path, bytes | tuple[bytes, ...]]], *, exclusive: bool = False
) -> None:
    """Write each (target, content): all to temporary files beside their targets first (where a
    full disk shows), then renamed into place in order. On failure no temporary file is left and
    the targets renamed before the failure are removed, so the last target never exists without
    the others: put the one readers look for last. A content given as a tuple of parts is written
    part after part (a profile is never copied to prepend a header). `exclusive`: a target that exists already is
    left alone and `FileExistsError` raised (each is hard-linked into place, then the temporary
    name removed).
    """
    temporaries: list[str] = []
    renamed: list[Path] = []
    try:
        for target, content in files:
            handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temporaries.append(name)
            with os.fdopen(handle, "wb") as stream:
                for part in content if isinstance(content, tuple) else (content,):
                    stream.write(part)
                stream.flush()
                os.fsync(stream.fileno())
        for name, (target, _) in zip(temporaries, files, strict=True):
            if exclusive:
                os.link(name, target)
                renamed.append(target)
                os.unlink(name)
            else:
                os.replace(name, target)
                renamed.append(target)
        for directory in {target.parent for target, _ in files}:
            _fsync_directory(directory)
    except BaseException:
        for name in temporaries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        for target in renamed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
        raise


def _fsync_directory(directory: Path) -> None:
    # Makes the renames durable across a power loss; not every filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
