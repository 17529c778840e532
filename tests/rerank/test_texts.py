import pytest

from rankstack import BM25, Corpus, Document
from rankstack.data.corpus import write_corpus_jsonl
from rankstack.errors import InputError
from rankstack.rerank import CorpusTexts, IndexTexts, texts_from

DOCS = [Document("d1", "Fleas live up to a year.", "Flea life"), Document("d2", "Cats sleep a lot."),
        Document("d3", "Dogs bark.", "Dogs"), Document("d4", "Eggs hatch in two to six days."),
        Document("d5", "Temperature and humidity matter.", "Climate")]
CONTENTS = {d.id: d.contents for d in DOCS}


def test_corpus_texts(tmp_path):
    path = tmp_path / "corpus.jsonl"
    write_corpus_jsonl(DOCS, path)
    for texts in (CorpusTexts(DOCS), CorpusTexts(path), CorpusTexts(Corpus(path)), texts_from(path)):
        assert texts.texts(["d3", "d1", "d3"]) == [CONTENTS["d3"], CONTENTS["d1"], CONTENTS["d3"]]
        assert texts.texts([]) == []
    assert CONTENTS["d1"] == "Flea life Fleas live up to a year." and CorpusTexts(path).source == str(path)
    with pytest.raises(InputError, match="'nope'"):
        CorpusTexts(DOCS).texts(["d1", "nope"])


def test_index_texts(tmp_path):
    bm25 = BM25.build(DOCS, tmp_path / "idx", progress=False)
    ids = ["d5", "d2", "d1", "d4", "d3"]
    for texts in (IndexTexts(bm25, batch_size=2), IndexTexts(bm25.index), IndexTexts(tmp_path / "idx"),
                  texts_from(tmp_path / "idx")):
        assert texts.texts(ids) == [CONTENTS[i] for i in ids]
    assert IndexTexts(bm25).source == str(bm25.index.path)
    with pytest.raises(InputError, match="'missing'"):
        IndexTexts(bm25).texts(["d1", "missing"])
    with pytest.raises(InputError, match="index directory"):
        texts_from(tmp_path)
