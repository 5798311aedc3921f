"""Shared fixtures: a temp DuckDB file and an ephemeral Dagster instance per test."""

from pathlib import Path

import dagster as dg
import pytest

from synth_assets.core.warehouse import Warehouse
from synth_assets.resources import (
    GenerationalIOManager,
    HumanEvalSplitResource,
    LlamaCppGeneratorResource,
    SandboxResource,
    WarehouseResource,
)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "warehouse.duckdb")


@pytest.fixture
def warehouse(db_path: str) -> Warehouse:
    return Warehouse(db_path)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def resources(db_path: str, tmp_path: Path) -> dict:
    """The production resources, pointed at a temp DuckDB file; the real model and sandbox."""
    wh = WarehouseResource(path=db_path)
    return {
        "warehouse": wh,
        "io_manager": GenerationalIOManager(warehouse=wh),
        "generator": LlamaCppGeneratorResource(),
        "sandbox": SandboxResource(),
        "humaneval_split": HumanEvalSplitResource(),
    }
