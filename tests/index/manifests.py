"""Editing a committed manifest in tests, as a buggy writer would: the edit keeps a valid checksum."""

import json

from rankstack.index import commit


def edit_manifest(path, edit):
    """Apply `edit(body)` (in place) to the manifest of the index at `path`, with a valid checksum."""
    body = json.loads((path / commit.MANIFEST).read_text())
    body.pop("checksum")
    edit(body)
    (path / commit.MANIFEST).write_text(json.dumps({**body, "checksum": commit._checksum(body)}))
