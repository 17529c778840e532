"""`rankstack check INDEX`: check an index whole (checksums of every file, every structure), as Lucene's CheckIndex."""

from __future__ import annotations

from rankstack.errors import IndexFormatError


def register(sub) -> None:
    p = sub.add_parser("check", help="check an index: every file's checksums and every structure search relies on")
    p.add_argument("index", help="index directory (any type: BM25, learned sparse, dense, PLAID, Seismic)")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.index.check import check_index

    report = check_index(args.index)
    print(report.to_text())
    if not report.ok:
        raise IndexFormatError(f"{args.index} is damaged (see above); rebuild it, or restore it from a copy")
    print("no problems found")
