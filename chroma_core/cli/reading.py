"""Commands that read or remove what is stored: sets, select, export, delete."""

from __future__ import annotations

import argparse
import json
import sys

from chroma_core.cli.common import EXIT_OK, UsageError, config_of, cut, print_json, reader, since, where
from chroma_core.cli.store import embedded_data_exists
from chroma_core.deletion import delete, delete_set
from chroma_core.export import export_set
from chroma_core.types import SelectRequest

__all__ = ["delete_", "export", "select", "sets"]


def sets(args: argparse.Namespace) -> int:
    config = config_of(args)
    sets = reader(args).list_sets() if not config.embedded or embedded_data_exists(config) else []
    if args.json:
        print_json([s.to_dict() for s in sets])
        return EXIT_OK
    print(f"{len(sets)} embedding set(s) in {where(config)}")
    if not sets:
        print("no embedding sets yet: save a TrainingSession or run `python -m chroma upload-training FILE`")
        return EXIT_OK
    print(f"{'set id':40}  {'dim':>5}  {'training':>9}  {'production':>10}  embedding set")
    for s in sets:
        key = json.dumps(s.embedding_set, ensure_ascii=False, sort_keys=True)
        print(f"{s.id:40}  {s.dimension:>5}  {s.training:>9}  {s.production:>10}  {key}")
    return EXIT_OK


def select(args: argparse.Namespace) -> int:
    transport = reader(args)
    request = SelectRequest(
        transport.set_id(args.set_id),
        args.n,
        args.diversity,
        since(args.since),
        args.rescore,
        typicality=args.typicality,
        balance=args.balance,
    )
    selection = transport.select(request)
    if args.json:
        print_json(selection.to_dict())
        return EXIT_OK
    if args.uris:
        for pick in selection.picks:
            print(pick.input_uri)
        return EXIT_OK
    print(
        f"{len(selection.picks)} picks from {selection.recommended} recommended of {selection.considered} production "
        f"inputs ({selection.near_duplicates_dropped} near duplicates of a pick left out"
        + (f"; {selection.rescored} scored now" if selection.rescored else "")
        + ")"
    )
    if selection.picks:
        print(f"{'rank':>4}  {'priority':>8}  {'sim':>5}  {'why':32}  input (its preview where it has one)")
    for p in selection.picks:
        sim = "" if p.similarity_to_picked is None else f"{p.similarity_to_picked:.2f}"
        shown = p.input_uri if p.preview is None else f"{p.input_uri}  {cut(p.preview, 80)!r}"
        print(f"{p.rank:>4}  {p.priority:>8.2f}  {sim:>5}  {','.join(p.result.recommendations):32}  {shown}")
    return EXIT_OK


def export(args: argparse.Namespace) -> int:
    modes = ("training", "production") if args.mode == "all" else (args.mode,)
    transport = reader(args)
    set_id = transport.set_id(args.set_id)
    report = export_set(
        transport,
        set_id,
        args.output,
        format=args.format,
        modes=modes,
        overwrite=args.force,
        progress=None if args.progress else False,
    )
    print_json(report.to_dict())
    return EXIT_OK


def delete_(args: argparse.Namespace) -> int:
    uris = list(args.uri or [])
    if args.uris_from:
        with sys.stdin if args.uris_from == "-" else open(args.uris_from, encoding="utf-8") as f:
            uris += [line.strip() for line in f if line.strip()]
    if not uris and args.set_id is None:
        raise UsageError("say what to delete: --set SET (the whole set) and/or --uri URI / --uris-from FILE.")
    what = (
        f"every record of {len(uris)} input(s)" + (f" in set {args.set_id}" if args.set_id else " in every set")
        if uris
        else f"the whole set {args.set_id}"
    )
    if not args.yes:
        raise UsageError(f"this would delete {what}, and cannot be undone; add --yes to go ahead.")
    config = config_of(args)
    transport = reader(args)
    options = {"persist_directory": config.persist_directory}
    if uris:
        report = delete(uris, embedding_set=args.set_id, transport=transport, **options)
        print_json(report.to_dict())
    else:
        set_id = transport.set_id(args.set_id)  # before the set is gone, when given by prefix
        print_json({"set_id": set_id, "deleted": delete_set(set_id, transport=transport, **options)})
    return EXIT_OK
