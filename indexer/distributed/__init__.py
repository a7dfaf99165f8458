"""findling on a Ray cluster (the optional extra ``findling[ray]``): distributed indexing
(indexing.py) and sharded serving (serving.py) of sharded collections (see shards.py).

Imported only for ``--ray``: nothing else in findling imports Ray, so the default install and
every single-machine command run without it.
"""
