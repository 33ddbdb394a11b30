"""Commands that move batch files and exports in: upload, upload-training, import, inspect, should-upload."""

from __future__ import annotations

import argparse
import json

from chroma_core.batch_format import BatchReader, header_json
from chroma_core.cli.common import EXIT_OK, EXIT_PARTIAL, config_of, print_json, reader
from chroma_core.errors import ChromaError, InvalidEmbeddingError
from chroma_core.export_reader import ExportReader, import_export, is_export
from chroma_core.progress import progress_bar, timed
from chroma_core.transport import transport_for
from chroma_core.types import QueryRequest
from chroma_core.types.reports import CONFLICTS_NAMED
from chroma_core.vectors import decode_base64, to_vector

__all__ = ["import_exports", "inspect_file", "should_upload", "upload"]


def upload(args: argparse.Namespace, *, training_only: bool) -> int:
    transport = transport_for(config_of(args))
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
            print_json({"file": str(path), **report.to_dict()})
            bar.update()
            if not report.ok:  # bad lines, or records whose ids were already stored with other vectors
                status = EXIT_PARTIAL
    return status


def should_upload(args: argparse.Namespace) -> int:
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
    transport = reader(args)
    set_id = transport.set_id(args.set_id)
    result = transport.query(QueryRequest(set_id, vector[None, :], (args.input_uri,), (inferences,)))[0]
    print_json(result.to_dict())
    return EXIT_OK


def import_exports(args: argparse.Namespace) -> int:
    transport = transport_for(config_of(args))
    status = EXIT_OK
    for path in args.files:
        header, reports = import_export(transport, path, progress=None if args.progress else False)
        problems = [p for r in reports for p in r.problems]
        conflicts = sum(r.conflicts for r in reports)
        print_json(
            {
                "file": str(path),
                "set_id": header.set_id,
                "read": sum(r.read for r in reports),
                "stored": sum(r.stored for r in reports),
                "duplicates": sum(r.duplicates for r in reports),
                "conflicts": conflicts,
                "conflicting_ids": [i for r in reports for i in r.conflicting_ids][:CONFLICTS_NAMED],
                "problems": problems,
            }
        )
        if problems or conflicts:
            status = EXIT_PARTIAL
    return status


def inspect_file(args: argparse.Namespace) -> int:
    if is_export(args.file):
        export = ExportReader(args.file)
        counts: dict[str, int] = {}
        for mode, records in export.chunks():
            counts[mode] = counts.get(mode, 0) + len(records)
        print_json(
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
        print_json(
            {
                "file": args.file,
                "header": header_json(reader.header),
                "records": count,
                "valid": not reader.problems,
                "problems": [str(p) for p in reader.problems],
            }
        )
        return EXIT_OK if not reader.problems else EXIT_PARTIAL
