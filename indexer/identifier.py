"""py3langid's language identifier, loaded from an unpacked copy of its model.

py3langid ships its model LZMA-compressed and unpacks it at every start: about a second
(measured: 0.43 s decompressing, 0.3 s reading the arrays from the archive, 0.15 s converting),
which every cold ``findling search`` waited for before it could analyse the question. The first
load writes the same arrays as plain ``.npy`` files into the model cache (atomically, in a
folder named by py3langid's version); later loads map them (about 30 ms). Where the cache
cannot be written, the identifier loads as py3langid loads it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from indexer.fsutil import fsync_path
from indexer.versions import package_version

logger = logging.getLogger(__name__)

# py3langid's model arrays, as its modelio.load_model reads them from the archive
ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")
_TYPECODES = {2: "H", 4: "I", 8: "L"}


def unpacked_folder(cache_dir: Path) -> Path:
    """Where the unpacked model of the installed py3langid lives in ``cache_dir``."""
    return Path(cache_dir) / f"py3langid-{package_version('py3langid')}"


def load_identifier(cache_dir: Path) -> Any:
    """py3langid's ``LanguageIdentifier`` with its default model (the one ``py3langid.classify``
    uses), read from the unpacked copy in ``cache_dir``, which is made first if missing."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    folder = unpacked_folder(cache_dir)
    if not _complete(folder):
        try:
            _unpack(MODEL_DIR / MODEL_FILE, folder)
        except OSError as exc:  # a read-only or full cache: work as py3langid does
            logger.info("cannot unpack the language model into %s (%s)", folder, exc)
            return LanguageIdentifier.from_model_file(MODEL_FILE)
    try:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
    except (OSError, ValueError) as exc:  # damaged meanwhile: never worse than py3langid
        logger.warning("cannot read the unpacked language model in %s (%s)", folder, exc)
        return LanguageIdentifier.from_model_file(MODEL_FILE)
    # as py3langid.modelio.load_model and LanguageIdentifier.from_model_file build it
    return LanguageIdentifier(
        np.asarray(arrays["ptc"]),
        np.asarray(arrays["pc"]),
        arrays["classes"].tolist(),
        _stdlib_array(arrays["nextmove"]),
        arrays["out_feat"].tolist(),
        tk_row=_stdlib_array(arrays["nextmove_row"]),
    )


def _stdlib_array(values: np.ndarray) -> array[int]:
    # the identifier walks its automaton one byte at a time in Python: stdlib arrays index
    # several times faster than numpy arrays there
    out = array(_TYPECODES[values.dtype.itemsize])
    out.frombytes(np.ascontiguousarray(values).data.cast("B"))
    return out


def _complete(folder: Path) -> bool:
    return all((folder / f"{name}.npy").is_file() for name in ARRAYS)


def _unpack(archive: Path, folder: Path) -> None:
    """Write the archive's arrays as ``.npy`` files into ``folder``, which appears whole or
    not at all (a process that unpacked it first wins)."""
    import lzma

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        with tempfile.TemporaryFile(suffix=".npz", dir=tmp) as unpacked:
            with lzma.open(archive) as source:
                shutil.copyfileobj(source, unpacked, length=1 << 20)
            unpacked.seek(0)
            with np.load(unpacked, allow_pickle=False) as data:
                for name in ARRAYS:
                    np.save(tmp / f"{name}.npy", data[name], allow_pickle=False)
        for name in ARRAYS:
            fsync_path(tmp / f"{name}.npy")
        tmp.chmod(0o755)  # mkdtemp's 0700 would become the cache folder's mode
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder):  # not a process that got there first: a real failure
                raise
        else:
            fsync_path(folder.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
