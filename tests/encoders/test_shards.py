import numpy as np
import pytest

from rankstack.encoders import encode_corpus_to_shards, load_shards
from rankstack.errors import IncompatibleIndexError, InputError

from .conftest import SHORT

CORPUS = [f"{t} (document {i})" for i, t in enumerate(SHORT * 3)][:11]  # 11 short texts


class Spy:
    """An encoder that records which texts it was asked to encode."""

    def __init__(self, encoder, info=None):
        self.encoder, self.calls, self.info = encoder, [], info

    def encode_documents(self, texts):
        self.calls.append(list(texts))
        return self.encoder.encode_documents(texts)

    def model_info(self):
        return self.info or self.encoder.model_info()


class Crash(Exception):
    pass


def crash_after(n):
    def on_shard(index, path):
        assert path.exists()
        if index + 1 == n:
            raise Crash
    return on_shard


def test_resume_after_crash(dense, tmp_path):
    out = tmp_path / "shards"
    first = Spy(dense)
    with pytest.raises(Crash):
        encode_corpus_to_shards(first, iter(CORPUS), out, shard_size=3, on_shard=crash_after(2))
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-000000.npz", "shard-000001.npz"]
    with pytest.raises(InputError, match="incomplete"):
        load_shards(out)
    (out / "shard-000002.npz.tmp").write_bytes(b"half a shard")  # a crash mid-write leaves this
    second = Spy(dense)
    paths = encode_corpus_to_shards(second, iter(CORPUS), out, shard_size=3)
    assert [len(c) for c in second.calls] == [3, 2]  # shards 0 and 1 were not recomputed
    assert second.calls[0] == CORPUS[6:9] and len(paths) == 4
    assert not list(out.glob("*tmp*"))
    whole = Spy(dense)
    encode_corpus_to_shards(whole, CORPUS, tmp_path / "whole", shard_size=3)
    resumed = load_shards(out)
    assert resumed.shape == (11, 384) and len(first.calls) == 2
    assert np.array_equal(resumed, load_shards(tmp_path / "whole"))
    assert np.abs(resumed - dense.encode_documents(CORPUS)).max() < 1e-5
    third = Spy(dense)  # everything done: nothing to encode
    encode_corpus_to_shards(third, CORPUS, out, shard_size=3)
    assert third.calls == []


def test_refuses_to_mix(dense, tmp_path):
    encode_corpus_to_shards(Spy(dense), CORPUS[:8], tmp_path, shard_size=4)
    with pytest.raises(InputError, match="other texts"):
        encode_corpus_to_shards(Spy(dense), CORPUS[1:9], tmp_path, shard_size=4)
    with pytest.raises(InputError, match="shard_size"):
        encode_corpus_to_shards(Spy(dense), CORPUS[:8], tmp_path, shard_size=5)
    other = {**dense.model_info(), "pooling": "cls"}
    with pytest.raises(IncompatibleIndexError, match="pooling"):
        encode_corpus_to_shards(Spy(dense, other), CORPUS[:8], tmp_path, shard_size=4)


def test_sparse_and_multivector_shards(splade, tmp_path):
    encode_corpus_to_shards(splade, CORPUS[:7], tmp_path / "sparse", shard_size=3)
    got = load_shards(tmp_path / "sparse")
    assert got.shape == (7, 30522) and abs(got - splade.encode_documents(CORPUS[:7])).max() < 1e-5

    class Multi:
        def encode_documents(self, texts):
            return [np.full((len(t) % 5 + 1, 4), i, np.float32) for i, t in enumerate(texts)]

        def model_info(self):
            return {"encoder": "fake-multi"}

    encode_corpus_to_shards(Multi(), CORPUS[:7], tmp_path / "multi", shard_size=3)
    got = load_shards(tmp_path / "multi")
    expected = Multi().encode_documents(CORPUS[:3]) + Multi().encode_documents(CORPUS[3:6]) + Multi().encode_documents(CORPUS[6:])
    assert len(got) == 7 and all(np.array_equal(a, b) for a, b in zip(got, expected))
