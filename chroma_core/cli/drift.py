"""``chroma drift`` and ``chroma clusters``: drift per window, and a set's clusters, from the command line."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from chroma_core.cli import common as cli
from chroma_core.types.drift import ClusterReport, DriftReport, DriftRequest

__all__ = ["add_parser"]


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _print_drift(report: DriftReport) -> None:
    print(
        f"drift of set {report.set_id[:12]} per {report.window:g} s window (alpha {report.alpha:g}, "
        f"{report.reference} training inputs held out as the reference)"
    )
    if report.message:
        print(report.message)
    if not report.windows:
        return
    print(f"{'window start (UTC)':16}  {'inputs':>6}  {'OOD':>6}  {'ref':>6}  {'p share':>8}  {'p MMD':>8}  verdict")
    for w in report.windows:
        print(
            f"{_when(w.start):16}  {w.count:>6}  {_pct(w.ood_share):>6}  {_pct(w.reference_share):>6}  "
            f"{_p(w.share_p_value):>8}  {_p(w.mmd_p_value):>8}  {w.verdict}"
            + (f" ({w.message})" if w.message and w.verdict != "empty" else "")
        )
        if w.verdict == "drift":
            for c in w.clusters[:3]:
                shown = ", ".join(cli.cut(e.preview or e.input_uri, 40) for e in c.examples)
                print(
                    f"{'':18}cluster {c.cluster}: {c.drift_ratio:.1f}x its training share, {c.production} in: {shown}"
                )


def _drift(args: argparse.Namespace) -> int:
    transport = cli.reader(args)
    request = DriftRequest(
        transport.set_id(args.set_id),
        args.window,
        cli.since(args.since),
        cli.since(args.until),
        args.alpha,
        args.clusters,
    )
    report = transport.drift(request)
    if args.json:
        cli.print_json(report.to_dict())
    else:
        _print_drift(report)
    return cli.EXIT_OK


def _print_clusters(report: ClusterReport) -> None:
    print(
        f"{len(report.clusters)} {report.method} clusters of set {report.set_id[:12]} ({report.training} training, "
        f"{report.production} production inputs; fitted on up to {report.sample} of each)"
    )
    print(f"{'cluster':>7}  {'training':>8}  {'production':>10}  {'ratio':>6}  {'recommended':>11}  examples")
    for c in report.clusters:
        shown = ", ".join(cli.cut(e.preview or e.input_uri, 30) for e in c.examples)
        print(
            f"{c.cluster:>7}  {c.training:>8}  {c.production:>10}  {c.drift_ratio:>6.2f}  "
            f"{_pct(c.recommended_share):>11}  {shown}"
        )


def _clusters(args: argparse.Namespace) -> int:
    transport = cli.reader(args)
    report = transport.clusters(transport.set_id(args.set_id), args.k, cli.since(args.since))
    if args.json:
        cli.print_json(report.to_dict())
    else:
        _print_clusters(report)
    return cli.EXIT_OK


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``drift`` and ``clusters`` on the CLI's subcommands."""
    p = sub.add_parser(
        "drift",
        parents=[common],
        help="has production drifted from training? per time window, with where (docs/drift.md)",
        description="Per window: the share of inputs tagged out_of_distribution against a held-out training "
        "reference (exact test), MMD against the reference (permutation test), a verdict at --alpha, and the "
        "clusters that grew most. Windows with fewer than 30 inputs get no verdict.",
    )
    cli.set_argument(p)
    p.add_argument("--window", default="1d", help="window length: 30m, 1h, 1d, 1w or seconds (default 1d)")
    p.add_argument("--since", help="first window's start: seconds since the epoch or ISO date (default: first input)")
    p.add_argument("--until", help="end of the last window (default: now)")
    p.add_argument("--alpha", type=float, default=0.05, help="false-alarm rate per window (default 0.05)")
    p.add_argument("--clusters", type=int, default=20, help="k-means clusters that say where (default 20)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_drift)

    p = sub.add_parser(
        "clusters",
        parents=[common],
        help="a set's training and production inputs in clusters: counts, drift ratio, examples",
    )
    cli.set_argument(p)
    p.add_argument("-k", type=int, default=20, help="clusters at most (default 20)")
    p.add_argument("--since", help="production inputs logged from then on (seconds since the epoch or ISO date)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_clusters)
