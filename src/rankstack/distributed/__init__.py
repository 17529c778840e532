"""Scale-out on Ray: distributed builds, sharded search with exact global scoring, rerankers on actor pools.

    from rankstack import distributed
    distributed.init(num_cpus=4)                                      # or init(address="auto") on a cluster
    distributed.build("corpus.jsonl.gz", "idx/bm25", "bm25", shards=4)  # Ray Data + an actor pool of workers
    bm25 = distributed.ShardedBM25("idx/bm25", replicas=2)             # a Stage: the same contract as BM25
    run = (bm25 % 100 >> distributed.RemoteReranker(CrossEncoder(model, texts=distributed.ShardTexts(bm25))))(qs)

Needs the `ray` extra: pip install 'rankstack[ray]'.
"""

from rankstack._lazy import lazy_exports

_EXPORTS = {
    "init": "cluster",
    "build": "indexing",
    "ShardedIndex": "layout",
    "ShardedBM25": "search",
    "ShardedSparse": "search",
    "ShardedDense": "search",
    "ShardedRun": "search",
    "ShardTexts": "search",
    "PartialResultsWarning": "search",
    "open_sharded": "search",
    "RemoteReranker": "rerank",
}

__all__ = list(_EXPORTS)
__getattr__ = lazy_exports("rankstack.distributed", _EXPORTS)
