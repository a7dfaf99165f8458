"""Retrievers for LLM frameworks, installed as extras and never imported by findling itself.

- ``pip install "findling[langchain]"``: :mod:`indexer.integrations.langchain`
- ``pip install "findling[llamaindex]"``: :mod:`indexer.integrations.llama_index`

Both search a local index (through :func:`indexer.open_index`) or a findling server (through
``POST /search``), with the same :class:`~indexer.integrations.searcher.Searcher`.
"""
