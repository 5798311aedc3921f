"""Errors a user can act on.

Every error the platform raises for bad input or bad configuration is a ``SynthConfigError``
whose message names the file or field and the fix. The Dagster layer turns these into
``dagster.Failure`` so the UI shows the message, not a traceback.
"""

from __future__ import annotations


class SynthConfigError(ValueError):
    """Bad configuration or bad input data; the message says what to change."""


class HumanFloorError(SynthConfigError):
    """The mix would fall below the configured human-share floor."""
