"""`rankstack datasets`: the named collections, their splits, and which are local."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("datasets", help="list the named collections, their splits, and which are local",
                       description="Named collections: found in the folders of RANKSTACK_DATA, among those shipped "
                                   "with rankstack, or in the cache; others are downloaded on first use.")
    p.add_argument("--local", action="store_true", help="only the collections available without downloading")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data import datasets

    entries = [e for e in datasets.catalog() if e.local or not args.local]
    width = max((len(e.name) for e in entries), default=10) + 2
    print(f"{'collection':<{width}}{'splits (default first)':<26}local")
    for e in entries:
        if not e.local:
            where = "no (downloaded on first use)"
        else:
            folders = sorted({str(f) for f in e.local.values()})
            missing = [s for s in e.splits if s not in e.local]
            where = f"yes: {', '.join(folders)}" + (f" (not {', '.join(missing)})" if missing else "")
        print(f"{e.name:<{width}}{', '.join(e.splits):<26}{where}")
    print(f"\nlooked in: {', '.join(str(r) for r in datasets.data_roots())} (RANKSTACK_DATA, shipped, cache); "
          "irds:<id> loads any ir_datasets id when that package is installed")
