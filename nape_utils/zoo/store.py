"""The zoo's result store: SQLite in WAL mode, one row per (space, spec, seed, budget).

A run is written in one transaction when it finishes, so a build killed at any moment (even SIGKILL)
loses at most the runs in flight and resumes from the rest. The store remembers the configuration
(task and trainer) it was written under and refuses to mix in runs made under another one.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (space TEXT PRIMARY KEY, profile TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    space TEXT NOT NULL, spec TEXT NOT NULL, seed INTEGER NOT NULL, budget INTEGER NOT NULL,
    test_accuracy REAL NOT NULL, val_accuracy REAL NOT NULL, train_loss TEXT NOT NULL,
    params INTEGER NOT NULL, flops INTEGER NOT NULL, seconds REAL NOT NULL, versions TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (space, spec, seed, budget)
);
"""
COLUMNS = ("space", "spec", "seed", "budget", "test_accuracy", "val_accuracy", "train_loss", "params", "flops",
           "seconds", "versions")


class ZooStore:
    """Open (or create) a store at ``path`` for runs made under ``config`` (a JSON-able dict).

    ``readonly=True`` opens an existing store for reading only (status, export, notebooks): the file
    is left byte for byte as it was, and no configuration may be claimed; in a folder this process may not
    write, a store that SQLite cannot open read-only is read as immutable."""

    def __init__(self, path: str | Path, config: dict | None = None, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; a zoo store is one SQLite file: give a file path such as "
                             f"{self.path / 'zoo.sqlite'}")
        if readonly:
            if config is not None:
                raise ValueError("a read-only store cannot claim a configuration; open it with readonly=False")
            if not self.path.is_file():
                raise FileNotFoundError(f"no zoo store at {self.path}; start one with `nape zoo build`")
        else:
            _check_writable(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if readonly:
                self.db = _connect_readonly(self.path)
            else:
                self.db = sqlite3.connect(self.path, timeout=30)
            self._check_readable()
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.executescript(SCHEMA)
            stored = self.db.execute("SELECT value FROM config WHERE key = 'zoo'").fetchone()
            self.config = json.loads(stored[0]) if stored else None
        except (sqlite3.DatabaseError, json.JSONDecodeError) as err:
            raise ValueError(f"{self.path} is not a readable zoo store ({err}); move it aside and build again, "
                             "or restore it from git") from err
        if config is not None:
            self._claim(config)

    def _check_readable(self) -> None:
        """Refuse damaged files and SQLite databases that are not zoo stores, before writing anything."""
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = sorted(tables - {"config", "profiles", "runs"})
        if foreign:
            raise sqlite3.DatabaseError(f"an SQLite database with other tables ({', '.join(foreign)})")
        check = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")

    def _claim(self, config: dict) -> None:
        if self.config is None:
            with self.db:
                self.db.execute("INSERT INTO config VALUES ('zoo', ?)", (json.dumps(config, sort_keys=True),))
            self.config = json.loads(json.dumps(config))
            return
        stored, asked = _flat(_normalised(self.config)), _flat(_normalised(config))
        changed = [f"{key}: stored {stored.get(key, '(none)')!r}, asked {asked.get(key, '(none)')!r}"
                   for key in sorted(set(stored) | set(asked)) if stored.get(key) != asked.get(key)]
        if changed:
            raise ValueError(f"{self.path} was written under another zoo configuration ({'; '.join(changed)}); its "
                             "runs cannot be mixed with these. Use another store path, or build with the stored "
                             "configuration (the settings above are TrainConfig's and its task's, "
                             "nape_utils.zoo.TrainConfig).")

    def claim_profile(self, space: str, profile: dict) -> None:
        """Record the zoo profile a family's networks are built at; refuse a changed one."""
        text = json.dumps(profile, sort_keys=True)
        stored = self.db.execute("SELECT profile FROM profiles WHERE space = ?", (space,)).fetchone()
        if stored is None:
            with self.db:
                self.db.execute("INSERT INTO profiles VALUES (?, ?)", (space, text))
        elif stored[0] != text:
            raise ValueError(f"{self.path} holds {space} networks built at another zoo profile ({stored[0]}, now "
                             f"{text}); their labels cannot be mixed. Use another store path.")

    def done(self) -> set[tuple[str, str, int, int]]:
        return set(self.db.execute("SELECT space, spec, seed, budget FROM runs"))

    def add(self, record: dict, budget: int) -> None:
        row = dict(record, budget=budget, train_loss=json.dumps(record["train_loss"]),
                   versions=json.dumps(record["versions"], sort_keys=True))
        with self.db:  # one transaction per run
            self.db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                            [row[c] for c in COLUMNS])

    def runs(self):
        """All runs as a pandas DataFrame (train_loss and versions decoded)."""
        import pandas as pd

        table = pd.read_sql_query(f"SELECT {', '.join(COLUMNS)}, finished_at FROM runs ORDER BY space, spec, seed",
                                  self.db)
        table["train_loss"] = table["train_loss"].map(json.loads)
        table["versions"] = table["versions"].map(json.loads)
        return table

    def close(self) -> None:
        if not self.readonly:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the WAL in, so the file alone is the store
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_writable(path: Path) -> None:
    """Say that a store cannot be written, and why, before SQLite's "readonly database" makes it look corrupt."""
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())  # the one to write or create in
    if not folder.is_dir():
        raise ValueError(f"cannot make a zoo store at {path}: {folder} is a file, not a folder")
    # WAL mode writes a -wal and a -shm file beside the store, so its folder must be writable too
    blocked = path if path.exists() and not os.access(path, os.W_OK) else None
    blocked = blocked or (folder if not os.access(folder, os.W_OK) else None)
    if blocked is not None:
        raise ValueError(f"cannot write the zoo store at {path}: {blocked} is read-only. Give --store a path in a "
                         "writable folder (to continue this store, copy it there with its -wal file)")


def _connect_readonly(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opening alone does not read
        return db
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK):
            raise
    # Reading a WAL-mode store needs its -shm file, which a read-only folder cannot hold; whoever could
    # write the store there would have made one, so it is read as immutable, unless its WAL holds runs.
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise ValueError(f"{path} keeps runs in {wal.name} beside it, which a read-only folder cannot fold in: "
                         "copy both files into a writable folder and read the store there")
    return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)


def _normalised(config: dict) -> dict:
    """A configuration with its task's defaults filled in as the task reads them (stores written before a
    task setting existed recorded no value for it)."""
    from dataclasses import asdict

    from ..data.task import TaskConfig

    if not isinstance(config.get("task"), dict):
        return config
    return {**config, "task": asdict(TaskConfig.from_dict(config["task"]))}


def _flat(config: dict, prefix: str = "") -> dict:
    """Nested settings as dotted keys: ``{"task": {"noise": 0.1}}`` → ``{"task.noise": 0.1}``."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
