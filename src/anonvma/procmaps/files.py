"""Write output files whole or not at all (snapshots, node_exporter textfiles, recordings)."""

from __future__ import annotations

import os


def write_atomically(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then rename; ``mode``
    is the file's permissions.

    :raises OSError: naming ``path`` (never the temporary file).
    """
    import tempfile  # not at import time: `anonvma show` must start fast

    target = os.path.abspath(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".anonvma-")
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {err.strerror}") from err
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as err:
        os.unlink(tmp)
        raise OSError(err.errno, f"cannot write {path}: {err.strerror}") from err
    except BaseException:
        os.unlink(tmp)
        raise
