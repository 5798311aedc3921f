"""The base of every stage's settings: a pydantic model owned by the Dagster-free core.

Each setting is defined once, with its default, bounds and description, in the core; the
asset's ``dg.Config`` subclasses the core model (``class RawCandidatesConfig(SamplingSettings,
dg.Config)``), so the Launchpad shows the same defaults and descriptions, bounds are checked by
pydantic at launch, and the asset hands its config to the core as it is.

Dagster's config system accepts lists, not tuples, and nested models only when they are
``dg.Config`` classes: the core uses lists, and the Dagster layer builds nested config classes
by subclassing the core's nested models.
"""

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
