"""Errors that rgenima reports to its user.

Each class stands for one kind of failure; ``rgenima_app.cli`` maps the kinds to the exit codes of
the BIDS-App contract (docs/architecture.md, "Contracts"). Every message names the file or option at fault, and ``hint``
says what to do about it.
"""
from __future__ import annotations


class RgenimaError(Exception):
    """A failure the user can act on: printed without a traceback."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  -> {self.hint}"


class UsageError(RgenimaError):
    """Options or arguments that do not make sense together."""


class InvalidBidsError(RgenimaError):
    """The input dataset fails BIDS validation."""


class NoDataError(RgenimaError):
    """The participant/session labels or filters select nothing."""


class MissingInputError(RgenimaError):
    """A required input file is missing, unreadable or corrupt."""


class OutputNotWritableError(RgenimaError):
    """The output (or work) directory cannot be written."""


class FreeSurferLicenseError(RgenimaError):
    """FreeSurfer must run but no license file was found."""


class FreeSurferMissingError(RgenimaError):
    """FreeSurfer must run but is not installed."""


class ProcessingError(RgenimaError):
    """A processing step failed on valid input (or a stage is not available)."""
