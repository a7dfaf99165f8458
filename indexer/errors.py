"""A small hierarchy of domain errors; each adapter maps them once (exit codes, HTTP status)."""

from __future__ import annotations


class FindlingError(Exception):
    """Base class: ``message`` says what went wrong, ``hint`` what to do about it."""

    code = "findling_error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class InvalidRequestError(FindlingError):
    """The caller asked for something malformed (empty query, k out of range, ...)."""

    code = "invalid_request"


class SourceNotFoundError(FindlingError):
    """A path given to index does not exist or holds no readable documents."""

    code = "source_not_found"


class IndexNotFoundError(FindlingError):
    """There is no index where one was expected."""

    code = "index_not_found"


class IndexCorruptError(FindlingError):
    """The index exists but a file is missing, damaged or of an unknown format."""

    code = "index_corrupt"


class IndexBusyError(FindlingError):
    """Another process holds the collection's writer lock."""

    code = "index_busy"


class ModelMismatchError(FindlingError):
    """The index was built with another embedding model than the one configured."""

    code = "model_mismatch"

    @classmethod
    def between(cls, index_model: str, configured: str) -> ModelMismatchError:
        return cls(
            f"the index was built with model {index_model!r}, "
            f"but the configured model is {configured!r}",
            f"set FINDLING_MODEL={index_model} to use this index, or rebuild it with "
            "`findling index --rebuild`",
        )


class ModelUnavailableError(FindlingError):
    """The embedding model cannot be converted or loaded."""

    code = "model_unavailable"


class DocumentNotFoundError(FindlingError):
    """No document with the given id is in the collection."""

    code = "document_not_found"


class UnauthorizedError(FindlingError):
    """A request lacks the API key it needs, or brings a wrong one."""

    code = "unauthorized"


class WritesDisabledError(FindlingError):
    """Writes over HTTP are refused because no API key is configured."""

    code = "writes_disabled"


class PayloadTooLargeError(FindlingError):
    """A request body or document is larger than the configured limit."""

    code = "payload_too_large"


class ShardUnavailableError(FindlingError):
    """A shard of a collection served by several processes has no live replica."""

    code = "shard_unavailable"

    @classmethod
    def naming(cls, shards: list[str]) -> ShardUnavailableError:
        names = ", ".join(sorted(shards))
        return cls(
            f"no live replica of shard {names}: its results would be missing",
            "retry shortly (a replica is restarted), or send allow_partial=true to accept "
            "results without it",
        )
