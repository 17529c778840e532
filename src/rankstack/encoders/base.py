"""What every encoder shares: its record (what an index stores about it), rebuilding one from a record (the one
registry), and a repr that is an expression rebuilding it (rankstack.pipeline.config.parse).

An encoder class sets `kind` (the record's "encoder" value) and implements `to_record()` and `record_arguments`
(record -> constructor arguments); `from_record`, `config()` and `__repr__` follow from them, so that a record,
a repr and the constructor never disagree (as each sentence-transformers module owns its config).
"""

from __future__ import annotations

import os
from typing import Any

from rankstack.errors import IncompatibleIndexError, InputError
from rankstack.records import InMemory, check_compatible

#: Encoder classes by the kind their records name ("dense", "splade", "inference-free-sparse", "multivector").
ENCODER_TYPES: dict[str, type[Encoder]] = {}


class Encoder:
    """Base class of the encoders (text -> dense, sparse or multi-vector representations)."""

    kind: str = ""
    _runtime: dict[str, Any]
    #: The record arguments' values implied by the model alone (left out of the repr where equal).
    _model_defaults: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            ENCODER_TYPES[cls.kind] = cls

    def _keep_runtime(self, **options: Any) -> None:
        """Remember the runtime options given (None: not given), for the repr."""
        self._runtime = {k: v for k, v in options.items() if v is not None}

    # --- the record ------------------------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """What an index must record to be queried consistently (see rankstack.records.check_compatible)."""
        raise NotImplementedError

    def model_info(self) -> dict[str, Any]:
        """The record (the name indexes and encoded shards use)."""
        return self.to_record()

    @classmethod
    def record_arguments(cls, record: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments (other than the model and runtime options) that rebuild what `record` describes."""
        raise NotImplementedError

    def index_files(self) -> dict[str, bytes]:
        """Files an index keeps beside the record, by name (none by default; an inference-free encoder's IDF)."""
        return {}

    @classmethod
    def from_record(cls, record: dict[str, Any], *, model: Any = None, files: Any = None,
                    **options: Any) -> Encoder:
        """The encoder a record describes, checked against it. `model` replaces the recorded model (a folder where
        the same model now lies); `files` gives back what `index_files()` stored (`files.read_file(name)` -> bytes
        or None; an index); `options` are runtime options (device, dtype, batch_size, progress...)."""
        from rankstack.encoders.loading import recorded_spec

        arguments = {**cls.record_arguments(record), **cls._files(files), **options}
        encoder = cls(recorded_spec(record, model), **arguments)
        check_compatible(record, encoder.to_record())
        return encoder

    @classmethod
    def _files(cls, files: Any) -> dict[str, Any]:
        """Constructor arguments read from the files an index keeps beside the record (none by default)."""
        return {}

    # --- the repr --------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The model name as given (a hub id, a folder, a .gguf file or package:NAME)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this encoder: its settings (from its record) where they differ from
        what the model implies, and the runtime options given."""
        defaults = getattr(self, "_model_defaults", {})
        settings = {k: v for k, v in self.record_arguments(self.to_record()).items()
                    if (v != defaults[k] if k in defaults else v is not None)}
        return {**settings, **self._unrecorded(), **self._runtime}

    def _unrecorded(self) -> dict[str, Any]:
        """Constructor arguments a record cannot carry (e.g. in-memory tables, as InMemory markers)."""
        return {}

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({self.name!r}{args})"


def encoder_from_record(record: dict[str, Any], **options: Any) -> Encoder:
    """Rebuild the encoder an index's record describes (checked against it); options as `Encoder.from_record`."""
    kind = (record or {}).get("encoder")
    if not kind:
        raise InputError("this index records no encoder: pass encoder= (an encoder or a model name)")
    cls = _encoder_type(kind)
    return cls.from_record(record, **options)


def as_encoder(encoder: Any, record: dict[str, Any] | None = None, *, kind: str, **options: Any) -> Encoder:
    """An encoder of `kind`: `encoder` itself; one built from a model name (with the settings `record` holds, when
    given); or, for None, the one `record` describes. `options` are runtime options for one built here."""
    cls = _encoder_type(kind)
    if isinstance(encoder, Encoder):
        if encoder.kind != kind:
            raise InputError(f"expected a {kind} encoder, got {type(encoder).__name__}")
        return encoder
    if encoder is not None and not isinstance(encoder, (str, os.PathLike)):
        raise InputError(f"expected an encoder or a model name, got {type(encoder).__name__}")
    if record:
        if record.get("encoder") != kind:
            raise IncompatibleIndexError(f"the index records an encoder of kind {record.get('encoder')!r}, "
                                         f"not {kind!r}")
        return cls.from_record(record, model=encoder, **options)
    if encoder is None:
        raise InputError("this index records no encoder: pass encoder= (an encoder or a model name)")
    return cls(encoder, **options)


def _encoder_type(kind: str) -> type[Encoder]:
    if kind not in ENCODER_TYPES:
        from rankstack._lazy import import_submodules
        import_submodules("rankstack.encoders")
    if kind not in ENCODER_TYPES:
        raise IncompatibleIndexError(f"unknown encoder kind {kind!r} (known: {', '.join(sorted(ENCODER_TYPES))})")
    return ENCODER_TYPES[kind]


__all__ = ["ENCODER_TYPES", "Encoder", "InMemory", "as_encoder", "encoder_from_record"]
