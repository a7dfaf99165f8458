"""numpy's BLAS on one thread in the driver of ``findling serve --ray``.

OpenBLAS's threads keep spinning after each call (up to about a tenth of a second) on cores that
the shard replicas on the same machine need. A replica runs on one BLAS thread already (Ray
gives actors OMP_NUM_THREADS=1); so does the driver, which would otherwise spin them whenever it
searches in its own process (an unsharded collection it serves too). Measured with ``python -m
bench.ray``'s questions, each asked in one process and then through Ray in the same process (3
shards of 7,007 sentences, replicas and driver on 2 cores): hybrid p50 through Ray 15.2 and 16.7
ms with one thread, 48.9 and 63.4 ms with two. One-process serving keeps its threads: its
matrix-vector products over a large segment take half the time on two (7.3 against 3.7 ms for
50,000 vectors, 2 cores).
"""

from __future__ import annotations


def answer_on_one_thread() -> None:
    """Limit the BLAS libraries loaded so far (numpy's) to one thread, for good. (threadpoolctl
    lets only the first thread that sets OpenBLAS's threads set them: call it from the main
    thread.)"""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
