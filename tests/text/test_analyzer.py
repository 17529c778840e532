import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.errors import InputError
from rankstack.index import lucene
from rankstack.text import Analyzer
from rankstack.text.analyzer import DEFAULT_PATTERN
from rankstack.text.ascii_tokens import TokenTable


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


# Characters that exercise the tokenizer's rules: word characters, the apostrophe and dot joining runs, other
# punctuation and space, and (for the regex path) non-ASCII letters, a curly apostrophe and a letter whose
# lowercase is two characters.
TOKEN_ALPHABET = "aZ_9 '.-,\n" + "é’İß"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(TOKEN_ALPHABET, max_size=30), max_size=8), min_size=1, max_size=3), st.booleans())
def test_batch_analysis_equals_one_text_at_a_time(batches, lowercase):
    """The compiled ASCII tokenizer, the regex for other texts, their merge, and the token table that batches
    share give what `analyze` gives; each distinct token has one code, whichever path met it."""
    a = Analyzer(stemmer="none", stopwords=["a"], lowercase=lowercase)
    seen = {}
    for texts in batches:
        batch = a.analyze_batch(texts)
        expected = [a._regex.findall(x.lower() if lowercase else x) for x in texts]
        assert batch.counts.tolist() == [len(e) for e in expected]
        assert batch.flat() == [a._normalise(t) for e in expected for t in e]
        assert [t for t in batch.flat() if t is not None] == [t for x in texts for t in a.analyze(x)]
        for token, code in zip([t for e in expected for t in e], batch.codes.tolist()):
            assert seen.setdefault(token, code) == code
    assert len(a._tokens) == len(seen)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text("ab é'", max_size=12), max_size=6))
def test_batch_analysis_with_a_custom_pattern(texts):
    """Other patterns go through the regex: tokens may then hold spaces or be empty, and still keep their codes."""
    for pattern in (r"\w+ \w+|\w+", r"\w*"):
        a = Analyzer(stemmer="none", stopwords=None, pattern=pattern)
        for _ in range(2):
            assert [t for t in a.analyze_batch(texts).flat() if t is not None] == \
                [t for x in texts for t in a.analyze(x)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("abC1_'. x", max_size=40), max_size=8))
def test_ascii_kernel_equals_the_regex(texts):
    table = TokenTable(str)
    codes, counts = table.ascii_codes(texts)
    expected = [re.findall(DEFAULT_PATTERN, t.lower()) for t in texts]
    assert [table.terms[c] for c in codes] == [t for e in expected for t in e]
    assert counts.tolist() == [len(e) for e in expected]
    assert len(table.terms) == len(set(table.terms))


def test_token_table_grows_and_keeps_every_code():
    """Thousands of distinct tokens from a table of 4,096 slots: it grows (rehashing), each token keeps its code, and
    tokens met again, ASCII or not, get their first code."""
    table = TokenTable(str.upper)
    texts = [" ".join(f"w{i}" for i in range(j, j + 500)) for j in range(0, 5000, 500)]
    codes, _ = table.ascii_codes(texts)
    assert codes.tolist() == list(range(5000)) and table.terms == [f"W{i}" for i in range(5000)]
    assert table.codes(["w7", "é", "w4999", "é"]).tolist() == [7, 5000, 4999, 5000]
    assert table.ascii_codes(["W7 w5000"])[0].tolist() == [7, 5001]
    codes, counts = TokenTable(str).ascii_codes(["9"] * 999 + ["x y z"])  # the most tokens a text's bytes allow
    assert counts.tolist() == [1] * 999 + [3] and codes.tolist() == [0] * 999 + [1, 2, 3]
    copy = pickle.loads(pickle.dumps(table))
    assert copy.codes(["w9", "new"]).tolist() == [9, 5002] and copy.terms[-1] == "NEW"
