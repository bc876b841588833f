"""The errors services raise, in one light module: interfaces (CLI, API, web) catch them by name without
importing the services, the database layer or the models.

Each one means something a person can act on; their messages say what. Interfaces turn them into answers
(the API: a status and a stable code, see ``facesearch.api.errors``; the CLI: a message and an exit status).
"""

from __future__ import annotations


class FacesearchError(Exception):
    """The base of every error a facesearch service raises on purpose."""


class AccessDenied(FacesearchError, PermissionError):
    """The principal may not do this (HTTP 403). Nothing was changed."""

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


class NotVisible(FacesearchError, LookupError):
    """The thing does not exist, or lies outside what the principal may see: the same answer (HTTP 404)."""

    def __init__(self, message: str, code: str = "not_found") -> None:
        super().__init__(message)
        self.code = code


class AuditError(FacesearchError, RuntimeError):
    """The audit record could not be written; the action it was for must not go ahead."""


class ContextError(FacesearchError, ValueError):
    """A purpose or case is missing or not allowed."""


class AccountError(FacesearchError, ValueError):
    """An account operation cannot be done (unknown user, bad name, duplicate...)."""


class CaseError(FacesearchError, ValueError):
    """A case operation cannot be done (a closed case, a decision that is not one...)."""


class CollectionError(FacesearchError, ValueError):
    """A collection cannot be created or changed as asked (it exists, a bad value...)."""


class SubjectError(FacesearchError, ValueError):
    """A subject operation cannot be done (a label taken...)."""


class ErasureError(FacesearchError, ValueError):
    """The erasure target does not exist (or lies outside the acting user's collections) or is malformed."""


class OptOutError(FacesearchError, ValueError):
    """An opt-out cannot be added or removed."""


class PackError(FacesearchError):
    """A pack is unknown or its model files are missing."""


class SourceRefused(FacesearchError, ValueError):
    """An uploaded file, an archive or a server-side path is refused; ``code`` says why, in a word clients
    branch on: ``empty_file``, ``unsupported_media_type``, ``payload_too_large``, ``bad_archive``,
    ``storage_full``, ``path_not_allowed``, ``not_found``, ``validation_error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class IndexUnavailable(FacesearchError, ConnectionError):
    """The vector index's server (Milvus) did not answer within the time allowed for it to come back."""


class RayUnavailable(FacesearchError, RuntimeError):
    """``index --ray``: Ray is not installed, or its cluster cannot be reached."""


class AcceleratorUnavailable(FacesearchError, RuntimeError):
    """The ``accelerator`` setting names a device this machine's onnxruntime cannot use (or no known device)."""
