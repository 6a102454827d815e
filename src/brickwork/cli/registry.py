"""``brickwork registry list|versions|show|search|alias|verify|reindex|remove|export|import``.

The registry folder is --registry PATH, else $BRICKWORK_REGISTRY, else a folder in the
user data dir. An entry is NAME (kind.tag, its latest version), NAME@3 (a version) or
NAME@production (an alias). list and search take a glob ('find.*'); list, search, show
and versions take --json. Search takes ports as name:Type[axes]:

    brickwork registry search --in "features:Features[b c h w]" --out "mask:SoftMask[b 1 h w]"
    brickwork registry alias find.red@3 production
    brickwork registry reindex        # after a lost or damaged index.sqlite
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from brickwork.errors import RegistryError

if TYPE_CHECKING:
    from brickwork.types import NeuralType


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "registry",
        help="inspect and manage trained modules",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--registry", metavar="PATH", help="registry folder")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("list", help="every entry (latest versions; damaged ones flagged)")
    s.add_argument("pattern", nargs="?", default=None, help="glob over names, e.g. 'find.*'")
    s.add_argument("--all-versions", action="store_true", help="every version, not just the latest")
    s.add_argument("--json", action="store_true", help="print JSON")
    s = sub.add_parser("versions", help="every version of an entry, with its aliases")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="print JSON")
    s = sub.add_parser("show", help="an entry's card")
    s.add_argument("name", help="NAME, NAME@N or NAME@ALIAS")
    s.add_argument("--json", action="store_true", help="print JSON (the card; the default)")
    s = sub.add_parser("search", help="entries by signature (subtype-aware)")
    s.add_argument("pattern", nargs="?", default=None, help="glob over names, e.g. 'find.*'")
    s.add_argument("--in", dest="inputs", action="append", default=[], metavar="PORT:TYPE")
    s.add_argument("--out", dest="outputs", action="append", default=[], metavar="PORT:TYPE")
    s.add_argument("--kind", help="only this module kind")
    s.add_argument("--all-versions", action="store_true", help="every version, not just the latest")
    s.add_argument("--json", action="store_true", help="print JSON")
    s = sub.add_parser("alias", help="point an alias at a version (or remove it)")
    s.add_argument("ref", help="NAME@N (or NAME for its latest version; NAME with --remove)")
    s.add_argument("alias", help="alias name, e.g. production")
    s.add_argument("--remove", action="store_true", help="delete the alias instead")
    sub.add_parser("verify", help="re-hash every card and blob; says when reindex is needed")
    sub.add_parser("reindex", help="rebuild the index from the cards, blobs and aliases.json")
    s = sub.add_parser("remove", help="delete an entry (every version) or NAME@N")
    s.add_argument("name")
    s = sub.add_parser("export", help="write an entry as a hub-ready folder")
    s.add_argument("name", help="NAME, NAME@N or NAME@ALIAS")
    s.add_argument("folder")
    s = sub.add_parser("import", help="register an exported folder (as a new version)")
    s.add_argument("folder")
    s.add_argument("--name", help="register under this name (default: the card's)")
    s.add_argument(
        "--max-weights-bytes",
        type=int,
        default=None,
        metavar="N",
        help="largest model.safetensors accepted (default 4 GiB)",
    )
    for action in sub.choices.values():
        action.add_argument(
            "--registry", dest="registry_sub", metavar="PATH", help="registry folder"
        )
    # --import MODULE (repeatable, args.imports) is added to every parser by brickwork.cli
    p.set_defaults(func=run)


def _ports(items: list[str], flag: str) -> dict[str, NeuralType]:
    from brickwork.types import parse_type

    out: dict[str, NeuralType] = {}
    for item in items:
        name, sep, text = item.partition(":")
        if not sep or not name.strip():
            raise RegistryError(
                f'{flag} {item!r}: write PORT:TYPE, e.g. "features:Features[b c h w]"'
            )
        try:
            out[name.strip()] = parse_type(text.strip())
        except Exception as exc:
            raise RegistryError(f"{flag} {item!r}: {exc}") from None
    return out


def _imports(args: argparse.Namespace) -> list[str]:
    """``--import MODULE`` values (``brickwork.cli.main`` has imported them already)."""
    return list(getattr(args, "imports", None) or [])


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def run(args: argparse.Namespace) -> int:
    from brickwork.registry import Registry

    reg = Registry(getattr(args, "registry_sub", None) or args.registry)
    imports = _imports(args)
    action = args.action
    if action in ("list", "versions"):
        entries = (
            reg.list(args.pattern, all_versions=args.all_versions)
            if action == "list"
            else reg.versions(args.name)
        )
        damaged = [e for e in entries if not e.ok]
        if args.json:
            _print_json([e.to_json() for e in entries])
        else:
            if not entries:
                what = f" matching {args.pattern!r}" if action == "list" and args.pattern else ""
                print(f"(no entries{what} in {reg.root})")
            for e in entries:
                tags = ",".join(e.aliases)
                if e.ok:
                    print(f"{e.ref:<40} {tags:<18} {e.mode:<10} {e.signature_text}")
                else:
                    print(f"{e.ref:<40} DAMAGED: {e.problem}")
        if damaged:
            print(
                f"{len(damaged)} damaged entries; run `brickwork registry verify` "
                "(and `brickwork registry reindex` for cards without an index row)",
                file=sys.stderr,
            )
            return 1
    elif action == "show":
        _print_json(reg.card(args.name).to_json())
    elif action == "search":
        found = reg.search(
            _ports(args.inputs, "--in"),
            _ports(args.outputs, "--out"),
            kind=args.kind,
            pattern=args.pattern,
            all_versions=args.all_versions,
        )
        if args.json:
            _print_json([c.to_json() for c in found])
        else:
            for c in found:
                print(f"{c.ref:<40} {c.signature_obj}")
            if not found:
                print("(no matching entries)")
    elif action == "alias":
        if args.remove:
            reg.remove_alias(args.ref, args.alias)
            print(f"removed alias {args.ref}@{args.alias}")
        else:
            card = reg.alias(args.ref, args.alias)
            print(f"{card.name}@{args.alias} -> {card.ref}")
    elif action == "verify":
        problems = reg.verify()
        for p in problems:
            print(p)
        if any(p.needs_reindex for p in problems):
            print("the index is out of date: run `brickwork registry reindex`")
        print(f"{_count(reg)} entries checked, {len(problems)} problems")
        return 1 if problems else 0
    elif action == "reindex":
        report = reg.reindex()
        for p in report.problems:
            print(p)
        print(
            f"reindexed {report.names} entries ({report.versions} versions, "
            f"{report.aliases} aliases), {len(report.problems)} problems"
        )
        return 1 if report.problems else 0
    elif action == "remove":
        removed = reg.remove(args.name)
        print(f"removed {', '.join(removed)}")
    elif action == "export":
        folder = reg.export(args.name, args.folder)
        print(f"exported {reg.resolve(args.name)} to {folder}")
    elif action == "import":
        kwargs = (
            {} if args.max_weights_bytes is None else {"max_weights_bytes": args.max_weights_bytes}
        )
        if args.max_weights_bytes is not None and args.max_weights_bytes < 1:
            raise RegistryError(f"--max-weights-bytes {args.max_weights_bytes}: must be >= 1")
        card = reg.import_(args.folder, args.name, imports=imports, **kwargs)
        print(f"imported {card.ref}")
    return 0


def _count(reg: Any) -> int:
    try:
        return len(reg)
    except RegistryError:
        return 0
