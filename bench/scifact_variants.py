"""SciFact BM25 nDCG@10 / R@100 under each stemmer and length-norm choice (README, "BM25 and Anserini")."""
import time, tempfile
from rankstack import BM25, Analyzer
from rankstack.data import datasets
from rankstack.evaluate import evaluate
ds = datasets.load("beir/scifact")
for stem in ["porter", "english"]:
    for norm in ["lucene", "exact"]:
        t=time.time()
        bm = BM25.build(ds.corpus, tempfile.mkdtemp(), analyzer=Analyzer(stemmer=stem), length_norm=norm, progress=False, k=1000)
        tb=time.time()-t; t=time.time()
        run = bm(ds.queries); ts=time.time()-t
        print(stem, norm, {k: round(v,4) for k,v in evaluate(run, ds.qrels, ["nDCG@10","R@100"]).aggregate.items()}, f"build {tb:.1f}s search {ts:.2f}s")
