import pytest

from rankstack.errors import InputError
from rankstack.index import lucene
from rankstack.text import Analyzer


def test_default_analysis_follows_anserini():
    a = Analyzer()
    assert a.analyze("The runners were running to the U.S. Senate's hearings") == \
        ["runner", "were", "run", "u.", "senat", "hear"]
    assert a.analyze("COVID-19 and 3.5 mg") == ["covid", "19", "3.5", "mg"]


def test_options_and_config_round_trip():
    a = Analyzer(stemmer="english", stopwords=["foo"], lowercase=False)
    assert a.analyze("Foo foo generously") == ["Foo", "generous"]  # case kept; "foo" stopped
    assert Analyzer.from_config(a.config()) == a
    assert Analyzer(stemmer="none", stopwords=None).analyze("the Cats") == ["the", "cats"]


def test_bad_options():
    with pytest.raises(InputError, match="unknown stemmer"):
        Analyzer(stemmer="klingon")
    with pytest.raises(InputError, match="unknown stopword list"):
        Analyzer(stopwords="nope")


def test_lucene_length_encoding():
    # Small lengths are exact; larger ones are rounded down to 4 significant bits (Lucene SmallFloat).
    assert list(lucene.quantise_lengths([0, 1, 23, 24, 31, 100, 1000])) == [0, 1, 23, 24, 31, 96, 984]
    table = lucene.LENGTH_TABLE
    assert all(table[1:] > table[:-1]) and lucene.encode_lengths([table[200]])[0] == 200
