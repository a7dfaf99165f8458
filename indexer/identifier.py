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


# texts walked through the automaton together (their byte columns: at most this many times the
# longest text's bytes of int32 in memory)
BATCH_TEXTS = 1024
# fewer texts are classified one at a time: a few milliseconds at most, where the walk would first
# import scipy (0.3-0.45 s), which a one-document `findling add` would wait for
FEWEST_WALKED = 64


class BatchIdentifier:
    """py3langid's identifier, answering for many texts at a time what its ``classify`` answers
    for each.

    py3langid walks its automaton one byte at a time in a Python loop, most of the cost of
    detecting a document's language and each paragraph's while preparing it for the index. Here
    all texts of a batch take each step together, in numpy, and are scored together by
    py3langid's formula (log1p of each feature's count times its table, plus the priors) as one
    sparse product: the answers are py3langid's (tests/test_identifier.py compares them), about
    3.5 times faster for the texts of 100 documents. An identifier whose internals are not the
    ones this walk knows (another py3langid, or one set to normalise probabilities), and calls
    with few texts, classify one text at a time.
    """

    def __init__(self, identifier: Any, fewest: int = FEWEST_WALKED) -> None:
        """``fewest``: how many texts a call needs to be walked together."""
        self.identifier = identifier
        self.fewest = max(2, fewest)
        self._walk: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        from py3langid import langid

        # the score of a text without features
        self._floor = float(getattr(langid, "RAW_FLOOR", np.finfo(np.float32).min))
        if _walkable(identifier):
            self._walk = (
                np.frombuffer(identifier.tk_nextmove, dtype=_dtype(identifier.tk_nextmove)),
                np.asarray(identifier._rowbase, dtype=np.int64),
                np.asarray(identifier.tk_output, dtype=np.int32),
            )

    def classify(self, text: str) -> str:
        """The language code of one text."""
        return str(self.identifier.classify(text)[0])

    def classify_many(self, texts: list[str]) -> list[str]:
        """The language code of each text, in order."""
        if self._walk is None or len(texts) < self.fewest:
            return [self.classify(t) for t in texts]
        encoded = [self.identifier._encode(t) for t in texts]
        # longest first: the texts still being walked at each step are a prefix
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        codes = [""] * len(texts)
        for start in range(0, len(order), BATCH_TEXTS):
            batch = order[start : start + BATCH_TEXTS]
            for i, code in zip(batch, self._classify([encoded[i] for i in batch]), strict=True):
                codes[i] = code
        return codes

    def _classify(self, texts: list[bytes]) -> list[str]:
        """The language of each text (UTF-8, as py3langid encodes it; longest first)."""
        from scipy.sparse import csr_matrix

        identifier = self.identifier
        found = self._features(texts)
        text, step = np.nonzero(found.T >= 0)
        # how often each text reaches each feature (py3langid's visit_counts)
        every = len(identifier.nb_ptc)  # features the model knows
        pairs, counts = np.unique(
            text * every + found[step, text].astype(np.int64), return_counts=True
        )
        rows, features = np.divmod(pairs, every)
        used, columns = np.unique(features, return_inverse=True)
        visits = csr_matrix(
            (np.log1p(counts.astype(np.float32)), (rows, columns)), shape=(len(texts), len(used))
        )
        # py3langid's naive Bayes score (its _sparse_score), for all texts at once
        scores = np.asarray(visits @ identifier.nb_ptc[used].astype(np.float32))
        scores += identifier.nb_pc
        scores[np.bincount(rows, minlength=len(texts)) == 0] = self._floor
        for i, j in identifier._alias_pairs:  # a label under two columns counts once
            scores[:, i] = np.maximum(scores[:, i], scores[:, j])
            scores[:, j] = self._floor
        return [str(identifier.nb_classes[i]) for i in scores.argmax(axis=1)]

    def _features(self, texts: list[bytes]) -> np.ndarray:
        """The feature each byte of each text (longest first) reaches as py3langid walks it,
        -1 for none (or past the text's end): one row per byte position, a column per text."""
        assert self._walk is not None
        nextmove, rowbase, output = self._walk
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        width = int(lengths[0]) if len(texts) else 0
        data = np.zeros((width, len(texts)), dtype=np.int64)  # a step's bytes side by side
        for row, text in enumerate(texts):
            data[: len(text), row] = np.frombuffer(text, dtype=np.uint8)
        # how many texts are still being walked at each step
        walking = np.searchsorted(-lengths, -np.arange(width), side="right")
        states = np.zeros(len(texts), dtype=np.int64)
        found = np.full((width, len(texts)), -1, dtype=np.int32)
        for step in range(width):
            n = walking[step]
            states[:n] = nextmove[rowbase[states[:n]] + data[step, :n]]
            found[step, :n] = output[states[:n]]
        return found


def _walkable(identifier: Any) -> bool:
    # what the walk and the scoring read (not _sparse_score: the scores are summed here)
    needed = ("_encode", "_rowbase", "_alias_pairs", "tk_nextmove", "tk_output", "nb_ptc", "nb_pc")
    return (
        all(hasattr(identifier, name) for name in needed)
        and getattr(identifier, "_norm_probs", True) is False
        and getattr(identifier, "min_confidence", 0) is None
        and isinstance(identifier.tk_nextmove, array)
    )


def _dtype(values: array[int]) -> np.dtype[Any]:
    return np.dtype(f"u{values.itemsize}")
