"""API keys: a JSON file of hashed keys with scopes (``API_KEYS_FILE``), and the command that manages it.

    python -m serving.api.keys add --name dashboard --scope read          # prints the new key once, last line
    python -m serving.api.keys add --name ops --scope read,predict,admin
    python -m serving.api.keys list
    python -m serving.api.keys revoke <key id>

A key is ``rsk_<id>_<secret>``: the id is public (it names the key in logs, metrics and ``list``), the secret is
32 random bytes. The file keeps only the SHA-256 of the whole key: the key has 256 bits of entropy, so a slow
hash (scrypt) would add nothing but ~50 ms to every request. The running API re-reads the file when it changes
(inode, mtime or size), so keys are added and revoked without a restart.

Scopes: ``read`` (stores, forecasts, models, metrics), ``predict`` (``POST /predict``), ``admin`` (anything
that changes state; an admin key may also do everything else).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

SCOPES = ("read", "predict", "admin")
KEY_PATTERN = re.compile(r"rsk_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}")


class KeysFileError(ValueError):
    """The keys file cannot be read or is not a keys file (the message names the file and the problem)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    sha256: str

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str | list[str]) -> tuple[str, ...]:
    """``"read,predict"`` (or a list of such) as a tuple of known scopes; an unknown one is a ValueError."""
    parts = [p.strip() for item in ([text] if isinstance(text, str) else text) for p in item.split(",")]
    scopes = tuple(dict.fromkeys(p for p in parts if p))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {list(SCOPES)}; got {list(scopes) or 'none'}")
    return scopes


def read_keys(path: Path) -> dict[str, ApiKey]:
    """The keys in ``path`` by id; a missing file has none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise KeysFileError(f"API keys file {path} cannot be read: {exc}") from exc
    try:
        entries = json.loads(text)["keys"]
        keys = [ApiKey(id=e["id"], name=e["name"], scopes=parse_scopes(e["scopes"]), created_at=e["created_at"],
                       sha256=e["sha256"]) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise KeysFileError(f"API keys file {path} is not a keys file ({type(exc).__name__}: {exc}); "
                            "manage it with python -m serving.api.keys") from exc
    return {k.id: k for k in keys}


def _write_keys(path: Path, keys: dict[str, ApiKey]) -> None:
    """Atomically replace ``path`` (owner-only: it names every key holder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [{**asdict(k), "scopes": list(k.scopes)} for k in keys.values()]}, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Locked:
    """An exclusive lock beside the keys file, so two ``add``/``revoke`` commands never lose each other's change."""

    def __init__(self, path: Path):
        self.lock_path = path.with_name(f".{path.name}.lock")

    def __enter__(self):
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        os.close(self.fd)


def add_key(path: Path, name: str, scopes: str | list[str]) -> tuple[ApiKey, str]:
    """Add a new key; returns its record and the key itself (which is stored nowhere)."""
    scopes = parse_scopes(scopes)
    if not name.strip():
        raise ValueError("a key needs a name (who or what uses it)")
    key_id = secrets.token_hex(6)
    key = f"rsk_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(id=key_id, name=name.strip(), scopes=scopes,
                    created_at=datetime.now(UTC).isoformat(timespec="seconds"), sha256=key_hash(key))
    with _Locked(path):
        keys = read_keys(path)
        keys[key_id] = record
        _write_keys(path, keys)
    return record, key


def revoke_key(path: Path, key_id: str) -> ApiKey:
    with _Locked(path):
        keys = read_keys(path)
        if key_id not in keys:
            raise KeyError(f"no key {key_id!r} in {path}; keys: {sorted(keys)}")
        revoked = keys.pop(key_id)
        _write_keys(path, keys)
    return revoked


class KeyStore:
    """The API's view of the keys file, re-read when the file changes (one ``stat`` per request)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple | None = None
        self._keys: dict[str, ApiKey] = {}
        self._lock = threading.Lock()
        self.keys()  # a broken file stops the start, not the first request

    def keys(self) -> dict[str, ApiKey]:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            with self._lock:
                self._keys = read_keys(self.path)
                self._stamp = stamp
        return self._keys

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key record ``presented`` matches, else None (unknown, revoked or wrong secret)."""
        match = KEY_PATTERN.fullmatch(presented)
        if match is None:
            return None
        record = self.keys().get(match.group(1))
        if record is None or not hmac.compare_digest(record.sha256, key_hash(presented)):
            return None
        return record
