"""ONNX Runtime backend: the same sentence-transformers model, exported once, run without torch.

Exporting needs torch and transformers, once per model folder: :func:`ensure_onnx_model` writes
``model.onnx`` (fp32) and, from it, ``model-int8.onnx`` (dynamic int8 quantisation of the
matrix multiplications and the embedding table) into a sibling folder ``<model>.onnx-v<N>/``.
Each file is written to a temporary name and renamed into place, so a reader sees a complete
file or none. Loading and inference use only onnxruntime, tokenizers and numpy: a query never
imports torch, which is what makes a cold ``findling search`` fast.

The exported graph takes ``input_ids`` and ``attention_mask`` and returns the mean of the token
states over the attention mask (the pooling of the sentence-transformers folder); the embedder
L2-normalises it. Prompts and the token limit are read from the folder's own configuration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.defaults import BATCH_SIZE
from indexer.errors import ModelUnavailableError
from indexer.fsutil import atomic_write
from indexer.model.embedder import normalise

log = logging.getLogger(__name__)

# Bump whenever the exported graph changes; it names the cache folder, so old files are not reused.
EXPORT_VERSION = "2"
VARIANTS = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
_OPSET = 17
# Tokens (rows x longest row) per model call. Measured on 2 cores (XQuAD dev, onnx-int8): long
# texts run 1.2-1.4x faster in batches of about this size than 32 at a time, whose activations
# no longer fit in cache; short sentences are as fast either way.
TOKEN_BUDGET = 1024


def onnx_dir(model_folder: Path) -> Path:
    """Where the ONNX files for ``model_folder`` are cached: a sibling folder."""
    return model_folder.parent / f"{model_folder.name}.onnx-v{EXPORT_VERSION}"


def ensure_onnx_model(model_folder: Path, variant: str) -> Path:
    """The ONNX file of ``variant`` ('onnx' or 'onnx-int8') for ``model_folder``, exported if new.

    Raises:
        ModelUnavailableError: the folder cannot be exported (e.g. torch is missing) or written.
    """
    folder = onnx_dir(Path(model_folder))
    fp32 = folder / VARIANTS["onnx"]
    target = folder / VARIANTS[variant]
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not fp32.is_file():
            log.warning("exporting %s to ONNX once (about a minute)", model_folder)
            atomic_write(fp32, lambda tmp: _export_optimised(Path(model_folder), tmp))
        if target != fp32:
            atomic_write(target, lambda tmp: _quantise(fp32, tmp))
    except ImportError as exc:
        raise ModelUnavailableError(
            f"exporting the model to ONNX needs torch, transformers and onnx ({exc})",
            "install torch==2.13.0 and `pip install -e .`, or set FINDLING_BACKEND=torch",
        ) from exc
    except (RuntimeError, ValueError) as exc:  # what torch.onnx and the quantiser raise
        raise ModelUnavailableError(
            f"exporting {model_folder} to ONNX failed ({exc})",
            "set FINDLING_BACKEND=torch for this model",
        ) from exc
    except OSError as exc:
        raise ModelUnavailableError(
            f"cannot write the ONNX model into {folder} ({exc})",
            "check free space (about 600 MB) and permissions, or set FINDLING_BACKEND=torch",
        ) from exc
    return target


def _export_optimised(model_folder: Path, out: Path) -> None:
    """Export, then fuse attention, GELU and layer norms with ONNX Runtime's BERT optimiser.

    Measured on 2 cores: +10 % indexing throughput and 15 % faster queries in int8, with the
    same cosine to torch; a graph the optimiser cannot fuse is kept as exported.
    """
    raw = out.with_name(out.name + ".raw")
    try:
        _export(model_folder, raw)
        config = _read_json(model_folder / "config.json")
        try:
            from onnxruntime.transformers.optimizer import optimize_model

            optimised = optimize_model(
                str(raw),
                model_type="bert",
                num_heads=int(config.get("num_attention_heads", 0)),
                hidden_size=int(config.get("hidden_size", 0)),
                opt_level=1,
            )
            optimised.save_model_to_file(str(out))
        except Exception as exc:  # the unfused graph computes the same; only slower
            log.warning("ONNX Runtime's optimiser failed (%s); using the plain export", exc)
            os.replace(raw, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            raw.unlink()


def _export(model_folder: Path, out: Path) -> None:
    """Export the folder's transformer plus mean pooling with the TorchScript exporter."""
    import torch
    from transformers import AutoModel

    pooling = _read_json(model_folder / "1_Pooling" / "config.json")
    if pooling and not pooling.get("pooling_mode_mean_tokens", False):
        raise ModelUnavailableError(
            f"{model_folder} does not use mean pooling; the ONNX backend only supports that",
            "set FINDLING_BACKEND=torch for this model",
        )
    # eager attention exports the matmul-softmax pattern that the optimiser fuses; SDPA does not
    model = AutoModel.from_pretrained(str(model_folder), attn_implementation="eager").eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    ids = torch.tensor([[0, 1000, 2000, 3000, 2], [0, 1000, 2, 1, 1]], dtype=torch.long)
    mask = (ids != 1).long()
    dynamic = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(
            MeanPooled(),
            (ids, mask),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "embedding": {0: "batch"},
            },
            opset_version=_OPSET,
            dynamo=False,
        )


def _quantise(fp32: Path, out: Path) -> None:
    """Dynamic int8: weights quantised once, activations per batch at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel scales: cosine to fp32 0.993 instead of 0.986 per-tensor, at the same speed.
    # Fused contrib ops defeat shape inference; their outputs are float.
    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        content = json.load(handle)
    return content if isinstance(content, dict) else {}


class OnnxEmbedder:
    """A sentence-transformers folder run by onnxruntime; loaded lazily, once, thread-safely.

    ``name`` is the model's identity (the same as the torch backend's), so an index built with
    one backend is searchable with the other; int8 vectors differ slightly from fp32 ones.
    """

    def __init__(
        self,
        name: str,
        folder: Callable[[], Path],
        variant: str = "onnx-int8",
        batch_size: int = BATCH_SIZE,
        threads: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown ONNX variant {variant!r}; use one of {', '.join(VARIANTS)}")
        self._name = name
        self._folder = folder
        self._variant = variant
        self._batch_size = batch_size
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._prompts = {"query": "", "document": ""}
        self._dimension = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        self.load()
        return self._dimension

    def load(self) -> None:
        with self._lock:
            if self._session is None:
                self._load(self._folder())

    def _load(self, folder: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = ensure_onnx_model(folder, self._variant)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        # ONNX Runtime's threads spin for a while after each call by default, on the cores the
        # search that follows the question's embedding needs: with shard replicas on the same
        # machine, their proposals took 3.0 ms instead of 4.6 (bench.ray's questions, 3 shards,
        # 2 cores); embedding itself measured no slower without spinning
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        limit = int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length", 512))
        tokenizer.enable_truncation(limit)
        tokenizer.no_padding()
        prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts", {})
        self._prompts = {key: str(prompts.get(key, "")) for key in ("query", "document")}
        self._tokenizer = tokenizer
        self._dimension = int(session.get_outputs()[0].shape[-1])
        self._session = session

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        # transformers 5 drops a trailing "▁" piece that the original tokenizer keeps: strip
        prompt = self._prompts["document"]
        encodings = self._tokenizer.encode_batch([prompt + t.strip() for t in texts])
        truncated = sum(bool(e.overflowing) for e in encodings)
        if truncated:
            log.warning(
                "%d passage(s) exceed the model's token limit and are truncated when embedded",
                truncated,
            )
        # sorting by length keeps padding inside each batch small; order is restored below
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        vectors = np.empty((len(encodings), self._dimension), dtype=np.float32)
        for rows in token_batches([len(encodings[i].ids) for i in order], self._batch_size):
            picked = [order[i] for i in rows]
            vectors[picked] = self._run([encodings[i].ids for i in picked])
        return normalise(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        self.load()
        encoding = self._tokenizer.encode(self._prompts["query"] + text.strip())
        if encoding.overflowing:
            log.warning("the query exceeds the model's token limit and is truncated")
        return normalise(self._run([encoding.ids])[0])

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)


def token_batches(lengths: Sequence[int], max_rows: int) -> list[range]:
    """Consecutive batches of ascending ``lengths``: at most ``max_rows`` rows each, and at most
    ``TOKEN_BUDGET`` padded tokens unless a single text is longer than that."""
    batches, begin = [], 0
    for end in range(1, len(lengths) + 1):
        last = end == len(lengths)
        full = not last and (
            end - begin >= max_rows or (end + 1 - begin) * lengths[end] > TOKEN_BUDGET
        )
        if last or full:
            batches.append(range(begin, end))
            begin = end
    return batches
