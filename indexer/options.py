"""SearchOptions: every knob of a search service, built once from the settings at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from indexer import defaults
from indexer.defaults import Mode, Quantize
from indexer.documents import DEFAULT_MAX_BYTES
from indexer.merging import MergePolicy
from indexer.ranking import Fusion
from indexer.recipe import VectorRecipe

if TYPE_CHECKING:
    from indexer.settings import Settings

MB = 1024 * 1024


@dataclass(frozen=True)
class SearchOptions:
    """How a :class:`~indexer.service.SearchService` searches and indexes.

    ``recipe`` applies to new indexes only: an existing index keeps the recipe it was built with.
    """

    default_k: int = defaults.DEFAULT_K
    max_k: int = defaults.MAX_K
    max_query_chars: int = defaults.MAX_QUERY_CHARS
    default_mode: Mode = defaults.DEFAULT_MODE
    fusion: Fusion = field(default_factory=Fusion)
    max_file_bytes: int = DEFAULT_MAX_BYTES
    ann_threshold: int = defaults.ANN_THRESHOLD
    recipe: VectorRecipe = field(default_factory=VectorRecipe)
    batch_size: int = defaults.BATCH_SIZE
    quantize: Quantize = defaults.QUANTIZE
    segment_sentences: int = defaults.SEGMENT_SENTENCES
    graph_sentences: int = defaults.GRAPH_SENTENCES
    write_wait: float = defaults.WRITE_WAIT_SECONDS
    # merges inside a write (bounded work) and at the end of an indexing run (unbounded)
    write_merges: MergePolicy = field(
        default_factory=lambda: MergePolicy(max_merged=defaults.WRITE_MERGE_LIMIT)
    )
    build_merges: MergePolicy = field(default_factory=MergePolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchOptions:
        """The one mapping from user settings to options."""
        return cls(
            default_k=settings.default_k,
            max_k=settings.max_k,
            max_query_chars=settings.max_query_chars,
            default_mode=settings.search_mode,
            fusion=Fusion(settings.hybrid_lexical_weight, settings.hybrid_cross_language_weight),
            max_file_bytes=int(settings.max_file_mb * MB),
            ann_threshold=settings.ann_threshold,
            recipe=VectorRecipe(
                settings.recipe, settings.recipe_window, centring=settings.centring
            ),
            batch_size=settings.batch_size,
            quantize=settings.quantize,
            write_wait=settings.write_wait,
        )
