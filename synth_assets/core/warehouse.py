"""The DuckDB file that holds every table of the platform.

Two storage modes, both atomic (one transaction per write, so a failed write leaves the
previous data intact):

* ``snapshot`` tables (task_pool, human_reference, heldout_eval) are replaced as a whole.
* ``generational`` tables carry a ``generation`` column. Writing generation g replaces only
  g's rows, so history is kept and a re-run of one stage is idempotent. A registry table
  ``_generations`` records every write (table, generation, rows, time), which lets an empty
  write still mark its generation as done.

A generation is born when ``raw_candidates`` is written: its number is one more than the
largest generation in that table. Downstream stages work on the *current* generation, the
largest one ``raw_candidates`` has.

Connections are short-lived (open, do one thing, close) because DuckDB allows one writing
process per file: a long-lived handle would lock out the Dagster run workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import tenacity

from synth_assets.core.errors import SynthConfigError

DUCKDB_PATH_ENV = "SYNTH_DUCKDB_PATH"
SCHEMA = "synth"
REGISTRY = "_generations"
BIRTH_TABLE = "raw_candidates"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


LOCK_WAIT_S = 110.0  # how long a writer waits for another process's lock on the file
WRITE_MEMORY_LIMIT = "256MB"  # DuckDB's memory for writes that join stored rows (write_generation_sql)


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def open_duckdb(
    path: str, read_only: bool = False, wait_s: float = LOCK_WAIT_S, max_delay_s: float = 2.0
) -> duckdb.DuckDBPyConnection:
    """A connection to ``path``, retried with exponential backoff while another process holds
    the file's write lock (DuckDB allows one writing process); other errors raise at once."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_locked),
        wait=tenacity.wait_exponential(multiplier=0.05, max=max_delay_s),
        stop=tenacity.stop_after_delay(wait_s),
        reraise=True,
    )
    return retrying(duckdb.connect, path, read_only=read_only)


def default_duckdb_path() -> str:
    """``$SYNTH_DUCKDB_PATH``, else ``$DAGSTER_HOME/warehouse.duckdb``, else ./dagster_home/."""
    if os.environ.get(DUCKDB_PATH_ENV):
        return os.environ[DUCKDB_PATH_ENV]
    home = os.environ.get("DAGSTER_HOME") or str(Path.cwd() / "dagster_home")
    return str(Path(home) / "warehouse.duckdb")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise SynthConfigError(f"invalid table name {name!r}: use letters, digits and underscores")
    return name


class Warehouse:
    """Transactional reads and writes of polars frames in one DuckDB file."""

    def __init__(self, path: str | os.PathLike[str], schema: str = SCHEMA) -> None:
        self.path = str(path)
        self.schema = _ident(schema)
        if Path(self.path).stem == self.schema:
            # verified pitfall: catalog and schema with one name make every query ambiguous
            raise SynthConfigError(
                f"DuckDB file {self.path!r} has the same stem as the schema {schema!r}; "
                f"rename the file (e.g. warehouse.duckdb) or set {DUCKDB_PATH_ENV}"
            )

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, retrying while another process holds the write lock."""
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        elif not Path(self.path).exists():
            raise SynthConfigError(
                f"no DuckDB file at {self.path}: materialize the pipeline first "
                f"or point {DUCKDB_PATH_ENV} at an existing file"
            )
        con = open_duckdb(self.path, read_only=read_only, wait_s=LOCK_WAIT_S)
        try:
            if not read_only:
                con.execute(f"create schema if not exists {self.schema}")
                con.execute(
                    f"create table if not exists {self.schema}.{REGISTRY} ("
                    "table_name varchar, generation bigint, row_count bigint, written_at timestamptz)"
                )
            yield con
        finally:
            con.close()

    # ---------------------------------------------------------------- writes
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: all of it lands, or none of it."""
        with self.connect() as con:
            con.execute("begin")
            try:
                yield con
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise

    def replace_table(self, table: str, df: pl.DataFrame) -> None:
        """Replace a snapshot table as a whole, atomically."""
        t = f"{self.schema}.{_ident(table)}"
        arrow_df = df.to_arrow()  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
        with self.transaction() as con:
            con.execute(f"create or replace table {t} as select * from arrow_df")
            self._register(con, table, 0, df.height)

    def write_generation(self, table: str, df: pl.DataFrame, generation: int) -> None:
        """Replace generation ``generation`` of a generational table, atomically.

        New columns are added to the table (older generations get NULL), so a schema change
        across releases never deletes history.
        """
        if "generation" not in df.columns:
            raise ValueError(f"{table}: a generational frame needs a 'generation' column")
        gens = set(df["generation"].unique().to_list())
        if gens - {generation}:
            raise ValueError(f"{table}: frame holds generations {sorted(gens)}, expected only {generation}")
        t = f"{self.schema}.{_ident(table)}"
        arrow_df = df.to_arrow()  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
        with self.transaction() as con:
            con.execute(f"create table if not exists {t} as select * from arrow_df limit 0")
            _add_columns(con, t, df.columns, lambda name: _duck_type(con, df, name))
            con.execute(f"delete from {t} where generation = ?", [generation])
            if df.height:
                con.execute(f"insert into {t} by name select * from arrow_df")
            self._register(con, table, generation, df.height)

    def write_generation_sql(
        self, writes: dict[str, str], params: list, generation: int, relations: dict[str, pl.DataFrame]
    ) -> dict[str, int]:
        """Replace generation ``generation`` of several generational tables at once, each from a
        query (over the warehouse's tables and the given frames, by name), in one transaction:
        the rows go from DuckDB to DuckDB without entering Python. New columns are added as in
        ``write_generation``. Returns the rows written per table."""
        written: dict[str, int] = {}
        with self.transaction() as con:
            # the join and its ordering spill to disk past this, rather than grow the process:
            # a million wide rows sorted in memory took 600 MB more than the decisions
            con.execute(f"set memory_limit = '{WRITE_MEMORY_LIMIT}'")
            for name, frame in relations.items():
                con.register(name, frame.to_arrow())
            for table, query in writes.items():
                t = f"{self.schema}.{_ident(table)}"
                con.execute(f"create table if not exists {t} as select * from ({query}) limit 0", params)
                types = {r[0]: r[1] for r in con.execute(f"describe select * from ({query})", params).fetchall()}
                _add_columns(con, t, list(types), types.get)
                con.execute(f"delete from {t} where generation = ?", [generation])
                con.execute(f"insert into {t} by name select * from ({query})", params)
                written[table] = int(
                    con.execute(f"select count(*) from {t} where generation = ?", [generation]).fetchone()[0]
                )
                self._register(con, table, generation, written[table])
            con.execute("reset memory_limit")  # the setting is the database's, shared by its other connections
        return written

    def append(self, table: str, df: pl.DataFrame) -> None:
        """Append rows to an event table (alerts, review decisions), creating it on first use."""
        t = f"{self.schema}.{_ident(table)}"
        arrow_df = df.to_arrow()  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
        with self.transaction() as con:
            con.execute(f"create table if not exists {t} as select * from arrow_df limit 0")
            con.execute(f"insert into {t} by name select * from arrow_df")

    def record_export(self, generation: int, paths: dict[str, str]) -> None:
        """Where a generation's mix was published (what ``synth summary`` points to)."""
        self.append(
            "_exports",
            pl.DataFrame({"generation": [generation], "paths": [json.dumps(paths)], "written_at": [datetime.now(UTC)]}),
        )

    def export_paths(self, generation: int) -> dict[str, str] | None:
        """The newest publication of ``generation``, or None when it was never exported."""
        if not self.table_exists("_exports"):
            return None
        df = self.sql(
            f"select paths from {self.schema}._exports where generation = ? order by written_at desc limit 1",
            [generation],
        )
        return json.loads(df["paths"][0]) if df.height else None

    def _register(self, con: duckdb.DuckDBPyConnection, table: str, generation: int, rows: int) -> None:
        con.execute(
            f"delete from {self.schema}.{REGISTRY} where table_name = ? and generation = ?",
            [table, generation],
        )
        con.execute(
            f"insert into {self.schema}.{REGISTRY} values (?, ?, ?, ?)",
            [table, generation, rows, datetime.now(UTC)],
        )

    # ---------------------------------------------------------------- reads
    def table_exists(self, table: str) -> bool:
        if not Path(self.path).exists():
            return False
        with self.connect(read_only=True) as con:
            return bool(
                con.execute(
                    "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                    [self.schema, table],
                ).fetchone()[0]
            )

    def current_generation(self) -> int:
        """The newest generation born in raw_candidates; 0 when there is none yet."""
        if not self.table_exists(REGISTRY):
            return 0
        with self.connect(read_only=True) as con:
            row = con.execute(
                f"select max(generation) from {self.schema}.{REGISTRY} where table_name = ?",
                [BIRTH_TABLE],
            ).fetchone()
        return int(row[0] or 0)

    def next_generation(self) -> int:
        return self.current_generation() + 1

    def read(
        self, table: str, generation: int | None = None, upto: int | None = None, generations: list[int] | None = None
    ) -> pl.DataFrame:
        """A whole table, one generation of it, every generation up to ``upto``, or the listed ones."""
        t = f"{self.schema}.{_ident(table)}"
        if not self.table_exists(table):
            raise SynthConfigError(f"table {t} does not exist in {self.path}: materialize the asset '{table}' first")
        sql, params = f"select * from {t}", []
        if generation is not None:
            sql, params = sql + " where generation = ?", [generation]
        elif upto is not None:
            sql, params = sql + " where generation <= ?", [upto]
        elif generations is not None:
            if not generations:
                sql += " where false"
            else:
                sql, params = sql + f" where generation in ({', '.join('?' * len(generations))})", list(generations)
        with self.connect(read_only=True) as con:
            return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())

    def sql(self, query: str, params: list | None = None) -> pl.DataFrame:
        """Run a read-only query; tables live in schema ``synth``."""
        with self.connect(read_only=True) as con:
            return pl.from_arrow(con.sql(query, params=params or None).to_arrow_table())


def _add_columns(con: duckdb.DuckDBPyConnection, table: str, names: list[str], type_of: Callable[[str], str]) -> None:
    """Columns the table lacks are added (older generations read NULL there), so a schema change
    across releases never deletes history; ``type_of(name)`` is asked only for those."""
    existing = {r[0] for r in con.execute(f"describe {table}").fetchall()}
    for name in names:
        if name not in existing:
            con.execute(f'alter table {table} add column "{name}" {type_of(name)}')


def _duck_type(con: duckdb.DuckDBPyConnection, df: pl.DataFrame, name: str) -> str:
    """SQL type of a column of an empty frame (``typeof`` needs a row)."""
    probe = df.select(name).clear(1).to_arrow()  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
    return con.execute(f'select typeof("{name}") from probe').fetchone()[0]
