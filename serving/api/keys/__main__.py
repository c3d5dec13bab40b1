"""``python -m serving.api.keys add|list|revoke``: manage the API keys file (see :mod:`serving.api.keys`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serving.api import keys as _keys
from serving.api.keys import SCOPES, add_key, read_keys, revoke_key
from settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.api.keys", description=_keys.__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, help="the keys file (default: $API_KEYS_FILE)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a key and print it (once: only its hash is kept)")
    add.add_argument("--name", required=True, help="who or what uses the key")
    add.add_argument("--scope", action="append", required=True, help=f"one or more of {', '.join(SCOPES)}")
    commands.add_parser("list", help="the keys' ids, names, scopes and creation times (never the keys)")
    revoke = commands.add_parser("revoke", help="remove a key by its id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    path = args.file or Settings.from_env().api_keys_file
    if path is None:
        parser.error("no keys file: set API_KEYS_FILE (or pass --file)")
    try:
        if args.command == "add":
            record, key = add_key(path, args.name, args.scope)
            print(f"Added key {record.id} ({record.name}; scopes: {','.join(record.scopes)}) to {path}. "
                  "Send it as 'Authorization: Bearer <key>'; it is shown only now:")
            print(key)
        elif args.command == "list":
            keys = read_keys(path)
            print(f"{len(keys)} key(s) in {path}")
            for k in keys.values():
                print(f"{k.id}  {k.name}  scopes={','.join(k.scopes)}  created={k.created_at}")
        else:
            record = revoke_key(path, args.key_id)
            print(f"Revoked key {record.id} ({record.name}); the API refuses it from its next request on.")
    except (ValueError, KeyError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
