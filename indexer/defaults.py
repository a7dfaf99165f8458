"""Measured defaults shared by the settings (the edge) and the library, with no imports.

Kept apart so that reading the settings, as `findling --help` does, loads no numpy or FAISS.
"""

# Measured with `python -m bench.ann` on 2 cores: exact search costs about 10 ms per query at
# 100,000 vectors and 107 ms at 1,000,000; HNSW32 answers 1,000,000 in 0.4 ms at recall@10 0.985
# (efSearch 128) with no training step, so it also suits indexes that grow by adding.
DEFAULT_ANN_THRESHOLD = 100_000

# neighbours either side embedded with a sentence: measured on XQuAD dev, 1 beats 0 by about
# 0.01 paragraph MRR@10 (0.016 across languages) at about 4x the embedding work
DEFAULT_CONTEXT_WINDOW = 1
