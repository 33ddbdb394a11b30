"""``python -m chroma <command>`` (also installed as ``chroma-ml``): the parser and the entry point.

Exit codes: 0 success; 1 error, nothing done (the message says why and what to do); 2 usage error; 3 partial
success: a batch file had problems, its good records were still read (and, for uploads, stored).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chroma_core.cli import drift, duplicates, reading, serve, transfer, ui
from chroma_core.cli.common import (
    EPILOG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    set_argument,
)
from chroma_core.config import Config
from chroma_core.errors import ChromaError
from chroma_core.types import SelectRequest

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
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
        prog="chroma-ml", description="Chroma: which production inputs to label next.", epilog=EPILOG
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "upload-training",
        parents=[common],
        epilog=EPILOG,
        help="upload training batch files (.jsonl or .jsonl.gz) made by TrainingSession.save()",
        description="Upload training batch files. Uploading the same batch twice stores it once.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(run=lambda a: transfer.upload(a, training_only=True))

    p = sub.add_parser("upload", parents=[common], epilog=EPILOG, help="upload batch files of any mode")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(run=lambda a: transfer.upload(a, training_only=False))

    p = sub.add_parser(
        "should-upload",
        parents=[common],
        epilog=EPILOG,
        help="ask whether one embedding is worth labelling",
        description="Print Chroma's recommendation for one embedding as JSON.",
    )
    set_argument(p)
    p.add_argument(
        "embedding",
        metavar="BASE64_EMBEDDING",
        help="base64 of the little-endian float32 vector (or a JSON list of numbers)",
    )
    p.add_argument("--input-uri", default="<cli>", help="name of the input, echoed in the answer")
    p.add_argument("--inferences", metavar="JSON", help="the model's outputs for this input, as JSON")
    p.set_defaults(run=transfer.should_upload)

    p = sub.add_parser(
        "select",
        parents=[common],
        epilog=EPILOG,
        help="pick the production inputs most worth labelling next",
        description="Rank the stored production inputs that were recommended for training, spread the picks over "
        "the embedding space (maximal marginal relevance), and leave out near duplicates of a pick.",
    )
    set_argument(p)
    p.add_argument("-n", type=int, default=100, help="how many inputs to pick (default 100)")
    p.add_argument(
        "--diversity",
        type=float,
        default=SelectRequest.diversity,
        help=f"0 = priority order, 1 = spread only ({SelectRequest.diversity})",
    )
    for weight, meaning in (
        ("typicality", "weigh priority by local density: dense novel regions before lone outliers"),
        ("balance", "spread picks over predicted labels (1 = every class before a repeat)"),
    ):
        default = getattr(SelectRequest, weight)
        p.add_argument(f"--{weight}", type=float, default=default, metavar="W", help=f"0-1: {meaning} ({default})")
    p.add_argument("--since", metavar="TIME", help="only inputs logged from TIME on (epoch seconds or ISO date)")
    p.add_argument("--rescore", action="store_true", help="judge every input against the current training data")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the selection as JSON")
    out.add_argument("--uris", action="store_true", help="print only the picked input_uris, one per line")
    p.set_defaults(run=reading.select)

    p = sub.add_parser(
        "export",
        parents=[common],
        epilog=EPILOG,
        help="write a set's records and results to a Parquet or JSONL file",
        description="Export an embedding set for sharing (docs/export.md). The file appears whole or not at all.",
    )
    set_argument(p)
    p.add_argument("--format", choices=["parquet", "jsonl"], help="default: from the output file name")
    p.add_argument("--mode", choices=["all", "training", "production"], default="all", help="which records")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write (.parquet, .jsonl[.gz])")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(run=reading.export)

    p = sub.add_parser(
        "delete",
        parents=[common],
        epilog=EPILOG,
        help="delete a set, or every record of some inputs (erasure)",
        description="Delete a whole set (--set), or every training and production record of some inputs (--uri, "
        "--uris-from) in every set or in --set, with their vectors and their copies in batch files under the "
        "persist directory. Asks for --yes: a delete cannot be undone.",
    )
    set_argument(p, required=False)
    p.add_argument("--uri", action="append", metavar="URI", help="an input_uri whose records to delete (repeatable)")
    p.add_argument("--uris-from", metavar="FILE", help="a file of input_uri values, one per line ('-': stdin)")
    p.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(run=reading.delete_)

    p = sub.add_parser("sets", parents=[common], epilog=EPILOG, help="list embedding sets with their counts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=reading.sets)

    serve.add_parser(sub)

    p = sub.add_parser(
        "import",
        parents=[common],
        epilog=EPILOG,
        help="load exports (.parquet, .jsonl[.gz] from `chroma export`) back into a store",
        description="Upload the records of exports: the same set, record ids, answers and previews. Importing a "
        "file twice stores nothing twice.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(run=transfer.import_exports)

    drift.add_parser(sub, common)  # drift, clusters

    p = sub.add_parser("inspect", epilog=EPILOG, help="check a batch file or an export: header, counts, validity")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(run=transfer.inspect_file)
    duplicates.add_parser(sub, common)
    ui.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
