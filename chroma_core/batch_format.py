"""The JSONL batch file: one embedding set per file, a header, one line per record, a trailer.

::

    {"chroma_batch":1,"batch_id":"…","set_id":"…","embedding_set":{…},"mode":"training","dimension":384,
     "dtype":"float32","created_at":"2026-11-22T23:59:00.000000Z"}
    {"id":"<batch_id>:0","input_uri":"/images/123.png","embedding":"<base64 of little-endian float32>",
     "inferences":{…},"label":"cat","time":1763855940.123456}
    …
    {"chroma_trailer":1,"count":2,"sha256":"<hex digest of every byte before this line>"}

``label`` is optional; so are ``result``, the answer Chroma gave for a production input (a JSON object), and
``preview``, a short text to show for the input (at most 500 characters).
Readers also accept ``"embedding": [0.1, 0.2, …]`` and a record without ``id`` (its id
is then ``<batch_id>:<line number>``, stable across re-uploads). A file ending in ``.gz`` is written gzipped;
any gzipped file is recognised by its magic bytes when read. The full specification is ``docs/batch-format.md``.

The header lives in ``batch_header``, the reader in ``batch_reader`` (re-exported here); this module writes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import os
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import BinaryIO

import numpy as np

from chroma_core.atomic import atomic_write
from chroma_core.batch_header import FORMAT_VERSION, header_json, parse_header
from chroma_core.batch_reader import CHUNK_ROWS, BatchReader, Problem, open_stream, read_batch
from chroma_core.json_text import json_text
from chroma_core.records import BatchHeader, Records

__all__ = [
    "FORMAT_VERSION",
    "BatchReader",
    "ChecksummedWriter",
    "Problem",
    "header_json",
    "open_stream",
    "parse_header",
    "read_batch",
    "write_batch",
    "write_batch_to",
]


def _record_lines(header: BatchHeader, records: Records, start: int, stop: int) -> str:
    vectors = np.ascontiguousarray(records.vectors[start:stop], dtype="<f4")
    row_bytes = header.dimension * 4
    if row_bytes % 3 == 0:
        # Each row is a whole number of base64 quanta, so one encode of the chunk slices cleanly into rows.
        width = row_bytes // 3 * 4
        encoded = base64.b64encode(vectors.tobytes()).decode("ascii")
        b64 = [encoded[i * width : (i + 1) * width] for i in range(stop - start)]
    else:
        b64 = [base64.b64encode(row.tobytes()).decode("ascii") for row in vectors]
    parts = []
    for i in range(start, stop):
        label = records.labels[i]
        label_part = "" if label is None else f',"label":{json_text(label)}'
        result = records.result(i)
        if result is not None:
            label_part += f',"result":{json_text(result.stored())}'
        preview = records.preview(i)
        if preview is not None:
            label_part += f',"preview":{encode_basestring(preview)}'
        time = records.times[i]
        parts.append(
            f'{{"id":{encode_basestring(records.ids[i])},"input_uri":{encode_basestring(records.input_uris[i])},'
            f'"embedding":"{b64[i - start]}","inferences":{json_text(records.inferences[i])}{label_part},'
            f'"time":{time if math.isfinite(time) else 0.0}}}\n'
        )
    return "".join(parts)


def write_batch(
    path: str | os.PathLike[str], header: BatchHeader, records: Records, *, overwrite: bool = False
) -> Path:
    """Write a batch atomically (temp file, fsync, rename); gzip when the name ends in ``.gz``."""
    target = Path(path)
    with atomic_write(target, overwrite=overwrite) as raw:
        write_batch_to(raw, header, records, compress=target.name.endswith(".gz"))
    return target


class ChecksummedWriter:
    """Lines to a binary stream (gzip level 1 when ``compress``: embeddings barely compress), every byte digested;
    :meth:`finish` adds the trailer line that lets a reader check the file is whole. Batch files and exports."""

    def __init__(self, raw: BinaryIO, *, compress: bool = False) -> None:
        self._raw = raw
        self._out: BinaryIO | gzip.GzipFile = (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) if compress else raw
        )
        self._digest = hashlib.sha256()

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self._digest.update(data)
        self._out.write(data)

    def finish(self, count: int, version: int = FORMAT_VERSION) -> None:
        trailer = {"chroma_trailer": version, "count": count, "sha256": self._digest.hexdigest()}
        self._out.write((json.dumps(trailer, separators=(",", ":")) + "\n").encode("ascii"))
        if self._out is not self._raw:
            self._out.close()


def write_batch_to(raw: BinaryIO, header: BatchHeader, records: Records, *, compress: bool = False) -> None:
    """Write a batch to an open binary stream, gzipped when ``compress``."""
    out = ChecksummedWriter(raw, compress=compress)
    out.write(json.dumps(header_json(header), separators=(",", ":"), ensure_ascii=False) + "\n")
    for start in range(0, len(records), CHUNK_ROWS):
        out.write(_record_lines(header, records, start, min(start + CHUNK_ROWS, len(records))))
    out.finish(len(records))
