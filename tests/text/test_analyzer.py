import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.errors import InputError
from rankstack.index import lucene
from rankstack.text import Analyzer
from rankstack.text.analyzer import DEFAULT_PATTERN
from rankstack.text.ascii_tokens import ascii_tokens


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
@given(st.lists(st.text(TOKEN_ALPHABET, max_size=30), max_size=12), st.booleans())
def test_batch_analysis_equals_one_text_at_a_time(texts, lowercase):
    """The compiled ASCII tokenizer, the regex for other texts, and their merge give what `analyze` gives."""
    a = Analyzer(stemmer="none", stopwords=["a"], lowercase=lowercase)
    batch = a.analyze_batch(texts)
    expected = [[t for t in a._regex.findall(x.lower() if lowercase else x)] for x in texts]
    assert batch.counts.tolist() == [len(e) for e in expected]
    assert batch.flat() == [a._normalise(t) for e in expected for t in e]
    assert [t for t in batch.flat() if t is not None] == [t for x in texts for t in a.analyze(x)]
    ascii_tokens_seen = set(t for x, e in zip(texts, expected) if x.isascii() for t in e)
    assert len(batch.terms) <= len(ascii_tokens_seen) + sum(len(e) for x, e in zip(texts, expected) if not x.isascii())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("abC1_'. x", max_size=40), max_size=8))
def test_ascii_kernel_equals_the_regex(texts):
    tokens, codes, counts = ascii_tokens(texts)
    expected = [re.findall(DEFAULT_PATTERN, t.lower()) for t in texts]
    assert [tokens[c] for c in codes] == [t for e in expected for t in e]
    assert counts.tolist() == [len(e) for e in expected]
    assert len(tokens) == len(set(tokens))


def test_ascii_kernel_keeps_distinct_tokens_with_colliding_slots():
    """Many distinct tokens in a small table: each keeps its own code (the table compares bytes, not only hashes)."""
    texts = [" ".join(f"w{i}" for i in range(j, j + 500)) for j in range(0, 5000, 500)]
    tokens, codes, _ = ascii_tokens(texts + texts[:1])
    assert tokens == [f"w{i}" for i in range(5000)]
    assert codes.tolist() == list(range(5000)) + list(range(500))
    tokens, codes, counts = ascii_tokens(["9"] * 999 + ["x y z"])  # the most tokens a text's bytes allow
    assert tokens == ["9", "x", "y", "z"] and counts.tolist() == [1] * 999 + [3] and codes.sum() == 6
