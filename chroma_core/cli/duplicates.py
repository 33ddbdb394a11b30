"""``chroma duplicates --set ID [--against ID2]``: near-duplicate groups in a set's training data, and leakage."""

from __future__ import annotations

import argparse
from typing import Any

from chroma_core.types import DuplicateReport, DuplicatesRequest

__all__ = ["add_parser"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the command on ``sub`` (the CLI's subparsers)."""
    from chroma_core.cli.common import EPILOG, set_argument

    p = sub.add_parser(
        "duplicates",
        parents=[common],
        epilog=EPILOG,
        help="list near-duplicate training records, and inputs that production or another set repeats",
        description="Groups of near-duplicate training records of a set; production inputs that copy one; with "
        "--against, training records of another set (say a test split) that copy one (train/test leakage).",
    )
    set_argument(p)
    p.add_argument("--against", metavar="SET", help="another set to look for leaks of this set's training data in")
    p.add_argument("--threshold", type=float, help="cosine distance (default: the set's calibrated near_duplicate)")
    p.add_argument("--no-production", action="store_true", help="do not look at production inputs")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from chroma_core.cli.common import EXIT_OK, print_json, reader

    transport = reader(args)
    try:
        against = None if args.against is None else transport.set_id(args.against)
        request = DuplicatesRequest(transport.set_id(args.set_id), against, args.threshold, not args.no_production)
        report = transport.duplicates(request)
    finally:
        transport.close()
    if args.json:
        print_json(report.to_dict())
    else:
        _show(report)
    return EXIT_OK


def _show(report: DuplicateReport) -> None:
    leaks = f", {len(report.leaks)} records of set {report.against[:12]} copying one" if report.against else ""
    print(
        f"near duplicates within {report.threshold:.4f} cosine distance: {len(report.groups)} groups of training "
        f"records ({report.duplicated_training} removable), {len(report.production)} production inputs copying a "
        f"training one{leaks}"
    )
    for i, group in enumerate(report.groups, 1):
        print(f"group {i} ({len(group.input_uris)} records, up to {group.max_distance:.4f} apart):")
        for uri in group.input_uris:
            print(f"    {uri}")
    for title, copies in (("production", report.production), ("leaks", report.leaks)):
        if copies:
            print(f"{title}:")
        for c in copies:
            print(f"    {c.input_uri}  copies  {c.training_uri}  ({c.distance:.4f})")
