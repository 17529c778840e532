"""`rankstack datasets`: list the named collections."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("datasets", help="list the named collections")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data import datasets

    for name in datasets.names():
        print(name)
