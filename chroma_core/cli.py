"""``python -m chroma <command>`` (also installed as ``chroma``).

Exit codes: 0 success; 1 error, nothing done (the message says why and what to do); 2 usage error; 3 partial
success: a batch file had problems, its good records were still read (and, for uploads, stored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from chroma_core import cli_duplicates
from chroma_core.batch_format import BatchReader, header_json
from chroma_core.cli_store import add_store_url, embedded_data_exists, embedded_where
from chroma_core.config import Config, load_config
from chroma_core.deletion import delete, delete_set
from chroma_core.errors import ChromaError, InvalidEmbeddingError
from chroma_core.export import export_set
from chroma_core.export_reader import ExportReader, import_export, is_export
from chroma_core.progress import progress_bar, timed
from chroma_core.server.settings import LOG_LEVELS, MIB, ServerSettings
from chroma_core.transport import Transport, transport_for
from chroma_core.types import QueryRequest, SelectRequest
from chroma_core.vectors import decode_base64, to_vector

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class UsageError(Exception):
    """A command used wrongly (exit code 2), said in words rather than by argparse."""


#: The service's defaults, read from its settings (no server dependency is loaded to know them).
_SERVER = ServerSettings()

_EPILOG = "exit codes: 0 ok, 1 error (nothing done), 2 usage error, 3 partial (file problems; good records kept)"


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=4, ensure_ascii=False))


def _config(args: argparse.Namespace) -> Config:
    return load_config(
        chroma_config=args.config,
        chroma_url=args.chroma_url,
        api_key=args.api_key,
        persist_directory=args.persist_directory,
    )


def _upload(args: argparse.Namespace, *, training_only: bool) -> int:
    transport = transport_for(_config(args))
    status = EXIT_OK
    show = None if args.progress else False
    with progress_bar(len(args.files), "uploading batch files", "files", progress=show) as bar:
        for path in args.files:
            if training_only:
                with BatchReader(path) as reader:
                    if reader.header.mode != "training":
                        raise ChromaError(
                            f"{path} is a {reader.header.mode} batch; upload-training takes training batches. "
                            "Use `python -m chroma upload` for production batches."
                        )
            with timed(f"uploading {path}"):
                report = transport.upload_file(path)
            _print({"file": str(path), **report.to_dict()})
            bar.update()
            if report.problems:
                status = EXIT_PARTIAL
    return status


def _should_upload(args: argparse.Namespace) -> int:
    if args.embedding.lstrip().startswith("["):
        try:
            values = json.loads(args.embedding)
        except ValueError as exc:
            raise InvalidEmbeddingError(
                f"the embedding looks like a JSON list but is not valid JSON ({exc})."
            ) from None
        vector = to_vector(values)
    else:
        vector = decode_base64(args.embedding)
    inferences = None
    if args.inferences is not None:
        try:
            inferences = json.loads(args.inferences)
        except ValueError as exc:
            raise ChromaError(f"--inferences is not valid JSON ({exc}).") from None
    transport = _reader(args)
    set_id = transport.set_id(args.set_id)
    result = transport.query(QueryRequest(set_id, vector[None, :], (args.input_uri,), (inferences,)))[0]
    _print(result.to_dict())
    return EXIT_OK


def _where(config: Config) -> str:
    if config.embedded:
        return embedded_where(config)
    return f"the Chroma service at {config.chroma_url}"


def _reader(args: argparse.Namespace) -> Transport:
    """The transport of a command that only reads: an embedded store that does not exist is not created."""
    config = _config(args)
    if config.embedded and not embedded_data_exists(config):
        named = getattr(args, "set_id", None)
        unknown = f"unknown embedding set {named!r}: " if named else ""
        raise ChromaError(
            f"{unknown}there is no Chroma data here: {_where(config)} does not exist. Run the command where your "
            "data is, or pass --persist-directory DIR (or --chroma-url URL for a service)."
        )
    return transport_for(config)


def _sets(args: argparse.Namespace) -> int:
    config = _config(args)
    sets = _reader(args).list_sets() if not config.embedded or embedded_data_exists(config) else []
    if args.json:
        _print([s.to_dict() for s in sets])
        return EXIT_OK
    print(f"{len(sets)} embedding set(s) in {_where(config)}")
    if not sets:
        print("no embedding sets yet: save a TrainingSession or run `python -m chroma upload-training FILE`")
        return EXIT_OK
    print(f"{'set id':40}  {'dim':>5}  {'training':>9}  {'production':>10}  embedding set")
    for s in sets:
        key = json.dumps(s.embedding_set, ensure_ascii=False, sort_keys=True)
        print(f"{s.id:40}  {s.dimension:>5}  {s.training:>9}  {s.production:>10}  {key}")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    transport = transport_for(_config(args))
    status = EXIT_OK
    for path in args.files:
        header, reports = import_export(transport, path, progress=None if args.progress else False)
        problems = [p for r in reports for p in r.problems]
        _print(
            {
                "file": str(path),
                "set_id": header.set_id,
                "read": sum(r.read for r in reports),
                "stored": sum(r.stored for r in reports),
                "duplicates": sum(r.duplicates for r in reports),
                "problems": problems,
            }
        )
        if problems:
            status = EXIT_PARTIAL
    return status


def _inspect(args: argparse.Namespace) -> int:
    if is_export(args.file):
        export = ExportReader(args.file)
        counts: dict[str, int] = {}
        for mode, records in export.chunks():
            counts[mode] = counts.get(mode, 0) + len(records)
        _print(
            {
                "file": args.file,
                "export": export.header.to_dict(),
                "records": counts,
                "valid": not export.problems,
                "problems": [str(p) for p in export.problems],
            }
        )
        return EXIT_OK if not export.problems else EXIT_PARTIAL
    with BatchReader(args.file) as reader:
        count = sum(len(chunk) for chunk in reader.chunks())
        _print(
            {
                "file": args.file,
                "header": header_json(reader.header),
                "records": count,
                "valid": not reader.problems,
                "problems": [str(p) for p in reader.problems],
            }
        )
        return EXIT_OK if not reader.problems else EXIT_PARTIAL


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ChromaError(
            f"--since {value!r} is neither seconds since the epoch nor an ISO date such as 2026-11-01T00:00:00Z."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _select(args: argparse.Namespace) -> int:
    transport = _reader(args)
    request = SelectRequest(transport.set_id(args.set_id), args.n, args.diversity, _since(args.since), args.rescore)
    selection = transport.select(request)
    if args.json:
        _print(selection.to_dict())
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
        shown = p.input_uri if p.preview is None else f"{p.input_uri}  {_cut(p.preview, 80)!r}"
        print(f"{p.rank:>4}  {p.priority:>8.2f}  {sim:>5}  {','.join(p.result.recommendations):32}  {shown}")
    return EXIT_OK


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _export(args: argparse.Namespace) -> int:
    modes = ("training", "production") if args.mode == "all" else (args.mode,)
    transport = _reader(args)
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
    _print(report.to_dict())
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
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
    config = _config(args)
    transport = _reader(args)
    options = {"persist_directory": config.persist_directory}
    if uris:
        report = delete(uris, embedding_set=args.set_id, transport=transport, **options)
        _print(report.to_dict())
    else:
        set_id = transport.set_id(args.set_id)  # before the set is gone, when given by prefix
        _print({"set_id": set_id, "deleted": delete_set(set_id, transport=transport, **options)})
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    try:
        from chroma_core.server.run import serve
    except ImportError as exc:
        raise ChromaError(
            f"the service needs the [server] extra ({exc.name} is missing): pip install 'chroma-ml[server]'"
        ) from None
    if args.store_url:  # create_app reads it there (serve() passes it no store_url)
        os.environ["CHROMA_STORE_URL"] = args.store_url
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        persist_directory=args.persist_directory,
        store_url=args.store_url or None,
        keys_file=args.keys_file,
        log_level=args.log_level,
        limits=_SERVER.limits
        if args.max_body_mb is None
        else dataclasses.replace(_SERVER.limits, max_body_bytes=args.max_body_mb * MIB),
    )
    serve(settings)
    return EXIT_OK


def _set_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    # One spelling (--set) for every command; the seed's -embedding_set and the long forms keep working.
    parser.add_argument(
        "--set",
        "--embedding-set",
        "--embedding_set",
        "-embedding_set",
        dest="set_id",
        required=required,
        metavar="SET",
        help="the embedding set: its id, a unique id prefix (8+ hex digits, see `chroma sets`) or its dict as JSON",
    )


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="chroma.json to read (default ./chroma.json if present)")
    common.add_argument(
        "--chroma-url",
        "--chroma_url",
        dest="chroma_url",
        metavar="URL",
        help="Chroma service URL (default: the embedded engine)",
    )
    common.add_argument(
        "--persist-directory",
        dest="persist_directory",
        metavar="DIR",
        help=f"where the embedded engine keeps its data (default ./{Config.persist_directory})",
    )
    common.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (they show only on a terminal anyway; CHROMA_PROGRESS=0 turns them off too)",
    )
    common.add_argument(
        "--api-key",
        dest="api_key",
        metavar="KEY",
        help="API key for the service (prefer $CHROMA_API_KEY: arguments show up in `ps`)",
    )

    parser = argparse.ArgumentParser(
        prog="chroma", description="Chroma: which production inputs to label next.", epilog=_EPILOG
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "upload-training",
        parents=[common],
        epilog=_EPILOG,
        help="upload training batch files (.jsonl or .jsonl.gz) made by TrainingSession.save()",
        description="Upload training batch files. Uploading the same batch twice stores it once.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(run=lambda a: _upload(a, training_only=True))

    p = sub.add_parser("upload", parents=[common], epilog=_EPILOG, help="upload batch files of any mode")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(run=lambda a: _upload(a, training_only=False))

    p = sub.add_parser(
        "should-upload",
        parents=[common],
        epilog=_EPILOG,
        help="ask whether one embedding is worth labelling",
        description="Print Chroma's recommendation for one embedding as JSON.",
    )
    _set_argument(p)
    p.add_argument(
        "embedding",
        metavar="BASE64_EMBEDDING",
        help="base64 of the little-endian float32 vector (or a JSON list of numbers)",
    )
    p.add_argument("--input-uri", default="<cli>", help="name of the input, echoed in the answer")
    p.add_argument("--inferences", metavar="JSON", help="the model's outputs for this input, as JSON")
    p.set_defaults(run=_should_upload)

    p = sub.add_parser(
        "select",
        parents=[common],
        epilog=_EPILOG,
        help="pick the production inputs most worth labelling next",
        description="Rank the stored production inputs that were recommended for training, spread the picks over "
        "the embedding space (maximal marginal relevance), and leave out near duplicates of a pick.",
    )
    _set_argument(p)
    p.add_argument("-n", type=int, default=100, help="how many inputs to pick (default 100)")
    p.add_argument("--diversity", type=float, default=0.5, help="0 = priority order, 1 = spread only (default 0.5)")
    p.add_argument("--since", metavar="TIME", help="only inputs logged from TIME on (epoch seconds or ISO date)")
    p.add_argument("--rescore", action="store_true", help="judge every input against the current training data")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the selection as JSON")
    out.add_argument("--uris", action="store_true", help="print only the picked input_uris, one per line")
    p.set_defaults(run=_select)

    p = sub.add_parser(
        "export",
        parents=[common],
        epilog=_EPILOG,
        help="write a set's records and results to a Parquet or JSONL file",
        description="Export an embedding set for sharing (docs/export.md). The file appears whole or not at all.",
    )
    _set_argument(p)
    p.add_argument("--format", choices=["parquet", "jsonl"], help="default: from the output file name")
    p.add_argument("--mode", choices=["all", "training", "production"], default="all", help="which records")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write (.parquet, .jsonl[.gz])")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(run=_export)

    p = sub.add_parser(
        "delete",
        parents=[common],
        epilog=_EPILOG,
        help="delete a set, or every record of some inputs (erasure)",
        description="Delete a whole set (--set), or every training and production record of some inputs (--uri, "
        "--uris-from) in every set or in --set, with their vectors and their copies in batch files under the "
        "persist directory. Asks for --yes: a delete cannot be undone.",
    )
    _set_argument(p, required=False)
    p.add_argument("--uri", action="append", metavar="URI", help="an input_uri whose records to delete (repeatable)")
    p.add_argument("--uris-from", metavar="FILE", help="a file of input_uri values, one per line ('-': stdin)")
    p.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(run=_delete)

    p = sub.add_parser("sets", parents=[common], epilog=_EPILOG, help="list embedding sets with their counts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_sets)

    p = sub.add_parser(
        "serve",
        epilog=_EPILOG,
        help="run the Chroma service (needs the [server] extra)",
        description="Run the HTTP service. Binds to loopback unless --host says otherwise.",
    )
    p.add_argument("--host", default=_SERVER.host, help=f"address to bind (default {_SERVER.host})")
    p.add_argument("--port", type=int, default=_SERVER.port, help=f"port (default {_SERVER.port})")
    p.add_argument(
        "--persist-directory",
        default=_SERVER.persist_directory,
        help=f"where the service keeps its data (default ./{_SERVER.persist_directory})",
    )
    add_store_url(p)
    p.add_argument(
        "--keys-file",
        default=os.environ.get("CHROMA_SERVER_KEYS_FILE"),
        help='JSON {"<api key>": "<application_id>"}; without it only loopback clients are served',
    )
    p.add_argument(
        "--max-body-mb",
        type=int,
        metavar="MIB",
        help=f"largest request body accepted, in MiB (default {_SERVER.limits.max_body_mib})",
    )
    p.add_argument("--log-level", default=_SERVER.log_level, choices=LOG_LEVELS)
    p.set_defaults(run=_serve)

    p = sub.add_parser(
        "import",
        parents=[common],
        epilog=_EPILOG,
        help="load exports (.parquet, .jsonl[.gz] from `chroma export`) back into a store",
        description="Upload the records of exports: the same set, record ids, answers and previews. Importing a "
        "file twice stores nothing twice.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(run=_import)

    from chroma_core.cli_drift import add_parser as add_drift  # its own module: this one is near its size limit

    add_drift(sub, common)  # drift, clusters

    p = sub.add_parser("inspect", epilog=_EPILOG, help="check a batch file or an export: header, counts, validity")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(run=_inspect)
    cli_duplicates.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ChromaError as exc:
        print(f"chroma: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except UsageError as exc:
        print(f"chroma: usage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `chroma sets | head`
        return EXIT_OK
