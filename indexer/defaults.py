"""Every default and measured constant a user can change, in one place, importing only typing.

The settings (the edge) and the library read them from here. Kept apart so that reading the
settings, as `findling --help` does, loads no numpy or FAISS.
"""

from typing import Literal

Mode = Literal["dense", "bm25", "hybrid"]
Group = Literal["paragraph", "document"]
RecipeKind = Literal["paragraph", "window", "none"]

DEFAULT_MODEL = "multilingual-e5-small"
DEFAULT_COLLECTION = "default"

# -- searching
DEFAULT_K = 5
MAX_K = 100
MAX_QUERY_CHARS = 2000
DEFAULT_MODE: Mode = "hybrid"
MAX_OFFSET = 1000  # results a search may skip (paging); deeper pages cost more candidates
PASSAGES_PER_DOCUMENT = 3  # group=document: each document's best passages, at most this many
# listing documents (GET /documents): how many at a time by default, and at most
DOCUMENTS_PAGE = 100
MAX_DOCUMENTS_PAGE = 1000
# Hybrid: weight of the BM25 share (see ranking.score_description) when question and sentence
# share a language, and when they do not. Measured on XQuAD dev (paragraph MRR@10): BM25 adds to
# dense within a language and only hurts across languages, where it has little to match. With
# language centring the dense scores spread wider; 0.2 chosen over 0.1 and 0.3 on articles 0-11
# (sum of paragraph and sentence MRR@10 over all directions, findling eval and bench.crosslang).
LEXICAL_WEIGHT = 0.2
CROSS_LANGUAGE_WEIGHT = 0.0

# -- indexing
MAX_FILE_MB = 20.0
BATCH_SIZE = 32  # texts per embedding call (the ONNX backend also caps padded tokens)

# Measured with `python -m bench.ann` on 2 cores: exact search costs about 10 ms per query at
# 100,000 vectors and 107 ms at 1,000,000; HNSW32 answers 1,000,000 in 0.4 ms at recall@10 0.985
# (efSearch 128) with no training step, so it also suits indexes that grow by adding.
ANN_THRESHOLD = 100_000

# "sq8": graphs hold 8-bit codes (a quarter of the memory), candidates re-scored exactly
Quantize = Literal["none", "sq8"]
QUANTIZE: Quantize = "none"
# the most sentences one segment gets while indexing: bounds the memory of a large run (its
# vectors are held until the segment is written); merges combine segments later
SEGMENT_SENTENCES = 200_000
# a large run grows one graph segment up to this many sentences instead of starting a graph per
# segment: each later segment's vectors are inserted into the graph of the one before (the same
# insertions, one graph to search: at a million sentences one HNSW graph answers in about half
# the time of five); its graph is held whole in memory meanwhile (about 1.8 GB at a million, and
# an fp16 copy of its vectors while inserting: `findling index` of a million peaked at 5.8 GB)
GRAPH_SENTENCES = 1_000_000
# how long a write waits for another process holding the collection's writer lock
WRITE_WAIT_SECONDS = 30.0
# the most live sentences a merge may produce inside an HTTP or library write, so that a write
# costs what it changes; `findling index` and `findling optimize` merge without this limit
WRITE_MERGE_LIMIT = 50_000

# What each sentence is embedded with (see recipe.VectorRecipe). Measured on XQuAD dev
# (paragraph MRR@10, onnx fp32, dense, mean of the four language pairs): the sentence alone 0.959;
# with its paragraph (cut into pieces of at most 1,200 characters) 0.967 at about 2x the embedding
# work of the sentence alone; with a window of one neighbour each side 0.968 at about 4x.
RECIPE: RecipeKind = "paragraph"
RECIPE_WINDOW = 1  # neighbours either side when the recipe is "window"
# Centring every embedding on its language's mean (recipe.LanguageMeans): in a collection of
# German and English texts, a question found its answer in the other language with paragraph
# MRR@10 0.793 -> 0.943 (de>en) and 0.872 -> 0.960 (en>de), same language within 0.005
# (XQuAD dev articles 12-23, strength chosen on 0-11; python -m bench.crosslang)
Centring = Literal["language", "none"]
CENTRING: Centring = "language"
PIECE_CHARS = 1200  # a longer paragraph is cut, between sentences, into pieces up to this

# -- serving over HTTP: the Host names answered by default (DNS rebinding), any port
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")

# -- what untrusted input may hold (HTTP bodies, MCP tool calls, JSONL records)
MAX_FILTERS = 16  # filters in one search: a field compared by one operator, nested or not
MAX_FILTER_VALUES = 32  # values in those filters (each of an $in or $nin list counts)
MAX_FILTER_DEPTH = 4  # levels of $and/$or
# a source filter is a glob compiled into a regular expression for every search: keep it short
MAX_FILTER_CHARS = 200
MAX_METADATA_DEPTH = 32  # nesting of a document's metadata (JSON parsing stops at 200 anyway)
# /v1/embeddings: the longest input. The default model reads 512 tokens and its longest token
# is 16 characters, so no input past 512 x 16 characters can change a vector.
MAX_EMBEDDING_CHARS = 8192

# -- showing a hit: the paragraph around it, or a window of sentences when it is long
SNIPPET_MAX_CHARS = 1200
SNIPPET_WINDOW = 2
