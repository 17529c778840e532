"""`rankstack search`: one query, or a queries file into a run file, over any index (its type from its manifest)."""

from __future__ import annotations

import argparse

from rankstack.cli import common
from rankstack.errors import InputError

#: Named collections whose queries are documents of the corpus: BEIR evaluates them without the hit whose id is the
#: query's (`ignore_identical_ids`; Anserini's -removeQuery), so searches of them drop it by default.
REMOVE_QUERY_COLLECTIONS = ("beir/arguana", "beir/quora")


def register(sub) -> None:
    p = sub.add_parser("search", help="search any index with one query or a queries file",
                       description="Search a BM25, learned sparse, Seismic, dense or late-interaction index; its type "
                                   "comes from the index's manifest.")
    p.add_argument("index", help="index directory")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--query", "-q", help="one query; prints the ranking")
    group.add_argument("--queries", help="queries file (JSONL, TSV, TREC topics) or a collection name")
    p.add_argument("-k", "--hits", dest="k", type=int, default=None, help="hits per query (default 1000; 10 with -q)")
    p.add_argument("--output", "-o", default="run.trec", help="run file to write (.trec or .jsonl; default run.trec)")
    p.add_argument("--format", dest="run_format", choices=["trec", "jsonl"], help="run file format (default: by name)")
    p.add_argument("--run-name", default=None, help="the run's tag (default: rankstack-<index type>)")
    p.add_argument("--show-text", action="store_true", help="with -q: print each hit's title and text")
    p.add_argument("--corpus", help="with --show-text: where the texts are, for indexes that store none (dense, late)")
    p.add_argument("--remove-query", action=argparse.BooleanOptionalAction, default=None,
                   help="drop hits whose id equals the query id (Anserini's -removeQuery, BEIR's ignore_identical_ids);"
                        f" on by default for {', '.join(REMOVE_QUERY_COLLECTIONS)}")
    add_search_options(p)
    common.add_progress_option(p)
    p.set_defaults(func=run)


def add_search_options(p: argparse.ArgumentParser) -> None:
    """The search knobs of every index type (each applies to some types: see rankstack.cli.indexes.OPTIONS)."""
    g = p.add_argument_group("search options (by index type)")
    g.add_argument("--algorithm", help="BM25 and learned sparse: maxscore (default), bmw, bmp (Block-Max Pruning), "
                                       "exhaustive; learned sparse also seismic "
                                       "(the approximate index) and matmul (exhaustive sparse product)")
    g.add_argument("--theta", type=float, help="BM25 / learned sparse: > 1 trades recall for speed (default 1)")
    g.add_argument("--threads", type=int, help="BM25 / learned sparse: search threads (default: all cores)")
    g.add_argument("--k1", type=float, help="BM25: k1 (default: the index's; Pyserini's set_bm25)")
    g.add_argument("--b", type=float, help="BM25: b (default: the index's)")
    g.add_argument("--query-cut", type=int, help="Seismic: query components kept")
    g.add_argument("--heap-factor", type=float, help="Seismic: block pruning factor")
    g.add_argument("--nprobe", type=int, help="dense IVF / late interaction: lists (centroids) probed")
    g.add_argument("--ef-search", type=int, help="dense HNSW: efSearch")
    g.add_argument("--rescore", action="store_true", help="dense / late: exact rescoring from stored vectors")
    g.add_argument("--ncandidates", type=int, help="late interaction: candidates scored exactly")
    g.add_argument("--encoder", metavar="MODEL", help="neural indexes: the query encoder (default: the model the index "
                                                      "records; another model is refused)")
    g.add_argument("--device", help="neural indexes: cpu, cuda, cuda:N")
    g.add_argument("--batch-size", type=int, help="neural indexes: queries encoded per batch")


def search_options(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in ("theta", "threads", "k1", "b", "query_cut", "heap_factor", "nprobe",
                                                   "ef_search", "rescore", "ncandidates", "encoder", "device",
                                                   "batch_size")}


def remove_query_default(args: argparse.Namespace, queries_source: str | None) -> bool:
    """--remove-query as given, else on for the collections BEIR evaluates that way (said on stderr)."""
    if args.remove_query is not None:
        return args.remove_query
    name = (queries_source or "").strip("/")
    collection = next((c for c in REMOVE_QUERY_COLLECTIONS if name == c or name.startswith(c + "/")), None)
    if collection is None:
        return False
    from rankstack.data import resolve

    if not resolve.is_collection_name(name):
        return False
    common.report(f"{collection}: hits whose id equals the query id are removed, as BEIR evaluates this collection "
                  "(--no-remove-query keeps them)")
    return True


def run(args) -> None:
    from rankstack.cli.indexes import index_kind, open_stage
    from rankstack.data import resolve

    single = args.query is not None
    k = args.k or (10 if single else 1000)
    if args.show_text and not single:
        raise InputError("--show-text prints one query's hits: use it with --query")
    if args.show_text and not args.corpus and index_kind(args.index) in ("dense", "late"):
        raise InputError(f"{args.index} stores no document texts: pass --corpus (the corpus file or collection "
                           "it was built from)")
    if single and args.remove_query:
        raise InputError("--remove-query needs query ids: use it with --queries")
    remove = not single and remove_query_default(args, args.queries)
    stage = open_stage(args.index, k=k + 1 if remove else k, algorithm=args.algorithm,
                       progress=common.progress(args), **search_options(args))
    if single:
        hits = stage.search(args.query, k)
        documents = _documents(args, stage, [d for d, _ in hits]) if args.show_text else {}
        for rank, (doc_id, score) in enumerate(hits, start=1):
            print(f"{rank:4d}  {score:9.4f}  {doc_id}")
            if doc_id in documents:
                print(_excerpt(documents[doc_id]))
        return
    queries = resolve.queries(args.queries)
    with common.Timer() as timer:
        result = stage(queries)
    if remove:
        result = result.remove_query_ids().cut(k)
    args.run_name = args.run_name or f"rankstack-{index_kind(args.index)}"
    common.write_run(result, args)
    common.report(f"searched {common.rate(len(queries), 'queries', timer.seconds)}; run written to {args.output}")


def _documents(args, stage, doc_ids: list[str]) -> dict:
    """Title and text of the hits: from the index's stored documents (BM25, learned sparse) or from --corpus."""
    from rankstack.data import resolve

    if args.corpus:
        wanted = set(doc_ids)
        return {d.id: d for d in resolve.corpus(args.corpus) if d.id in wanted}
    document = getattr(stage, "document", None)
    if document is None:
        from rankstack.rerank.texts import IndexTexts

        index = getattr(stage, "index", None)
        if getattr(index, "stored", None) is None or not index.settings.get("store"):
            raise InputError(f"{args.index} stores no document texts: pass --corpus (the corpus file or collection "
                               "it was built from)")
        texts = IndexTexts(index).texts(doc_ids)
        from rankstack.data.corpus import Document

        return {d: Document(d, t) for d, t in zip(doc_ids, texts)}
    return {d: document(d) for d in doc_ids}


def _excerpt(doc, width: int = 110, lines: int = 3) -> str:
    import textwrap

    text = f"{doc.title}: {doc.text}" if doc.title else doc.text
    wrapped = textwrap.wrap(" ".join(text.split()), width - 6, max_lines=lines, placeholder=" ...")
    return "\n".join("      " + line for line in wrapped)

