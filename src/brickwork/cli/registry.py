"""``brickwork registry list|show|search|verify|remove|export|import``.

The registry folder is ``--registry PATH``, else ``$BRICKWORK_REGISTRY``, else a folder
in the user data dir. Search takes ports as ``name:Type[axes]``::

    brickwork registry search --in "features:Features[b c h w]" --out "mask:SoftMask[b 1 h w]"
"""

from __future__ import annotations

import argparse
import json

from brickwork.errors import RegistryError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("registry", help="inspect and manage trained modules",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", metavar="PATH", help="registry folder")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="every entry")
    s = sub.add_parser("show", help="an entry's card")
    s.add_argument("name")
    s = sub.add_parser("search", help="entries by signature (subtype-aware)")
    s.add_argument("--in", dest="inputs", action="append", default=[], metavar="PORT:TYPE")
    s.add_argument("--out", dest="outputs", action="append", default=[], metavar="PORT:TYPE")
    s.add_argument("--kind", help="only this module kind")
    sub.add_parser("verify", help="re-hash every card and blob")
    s = sub.add_parser("remove", help="delete an entry")
    s.add_argument("name")
    s = sub.add_parser("export", help="write an entry as a hub-ready folder")
    s.add_argument("name")
    s.add_argument("folder")
    s = sub.add_parser("import", help="register an exported folder")
    s.add_argument("folder")
    s.add_argument("--name", help="register under this name (default: the card's)")
    s.add_argument("--force", action="store_true", help="overwrite an existing entry")
    for action in sub.choices.values():
        action.add_argument("--registry", dest="registry_sub", metavar="PATH", help="registry folder")
    p.set_defaults(func=run)


def _ports(items: list[str], flag: str) -> dict:
    from brickwork.types import parse_type

    out = {}
    for item in items:
        name, sep, text = item.partition(":")
        if not sep or not name.strip():
            raise RegistryError(f"{flag} {item!r}: write PORT:TYPE, e.g. "
                                "\"features:Features[b c h w]\"")
        try:
            out[name.strip()] = parse_type(text.strip())
        except Exception as exc:
            raise RegistryError(f"{flag} {item!r}: {exc}") from None
    return out


def run(args: argparse.Namespace) -> int:
    from brickwork.registry import Registry

    reg = Registry(getattr(args, "registry_sub", None) or args.registry)
    if args.action == "list":
        cards = reg.cards()
        if not cards:
            print(f"(no entries in {reg.root})")
        for c in cards:
            print(f"{c.name:<36} {c.mode:<10} {c.signature_obj}")
    elif args.action == "show":
        print(json.dumps(reg.card(args.name).to_json(), indent=2, sort_keys=True))
    elif args.action == "search":
        found = reg.search(_ports(args.inputs, "--in"), _ports(args.outputs, "--out"), kind=args.kind)
        for c in found:
            print(f"{c.name:<36} {c.signature_obj}")
        if not found:
            print("(no matching entries)")
    elif args.action == "verify":
        problems = reg.verify()
        for p in problems:
            print(p)
        print(f"{len(reg)} entries checked, {len(problems)} problems")
        return 1 if problems else 0
    elif args.action == "remove":
        reg.remove(args.name)
        print(f"removed {args.name}")
    elif args.action == "export":
        folder = reg.export(args.name, args.folder)
        print(f"exported {args.name} to {folder}")
    elif args.action == "import":
        card = reg.import_(args.folder, args.name, overwrite=args.force)
        print(f"imported {card.name}")
    return 0
