"""Chroma end to end on the embedded engine: no server, no model download.

A stand-in "model" embeds inputs from five known classes. We log its training embeddings, save them as a batch,
then ask Chroma about production inputs of four kinds: ordinary ones, near copies of training inputs, inputs from
a class the model never saw, and inputs the model is unsure about. Chroma should recommend labelling the novel and
uncertain ones and call the copies not useful.

    python examples/demo.py [--persist-directory DIR]
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

import chroma
from chroma_core.delivery import shutdown

EMBEDDING_SET = {"model": "demo-classifier", "model_version": "1", "layer": "pooled"}
DIM, CLASSES = 64, 5


def fake_model(rng: np.random.Generator, centers: np.ndarray, cls: int, spread: float = 0.35):
    """An embedding near its class centre, and softmax scores that are confident when the input is typical."""
    emb = centers[cls] + spread * rng.normal(size=DIM)
    logits = 4.0 * (centers @ emb) / np.linalg.norm(emb) / np.linalg.norm(centers, axis=1)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    inferences = [{"label": f"class-{i}", "score": float(p[i])} for i in np.argsort(-p)[:2]]
    return emb.astype(np.float32), inferences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--persist-directory", help="where Chroma keeps its data (default: a temporary folder, removed at the end)"
    )
    args = parser.parse_args()
    workdir = Path(args.persist_directory or tempfile.mkdtemp(prefix="chroma-demo-"))
    try:
        return run(workdir)
    finally:
        if not args.persist_directory:
            shutdown()  # the background worker lets go of the store before its folder goes
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"(removed {workdir}; pass --persist-directory DIR to keep the demo's data)")


def run(workdir: Path) -> int:
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(CLASSES + 1, DIM))  # the last class never appears in training

    print(f"1. Training: logging 2,000 embeddings of {CLASSES} classes (persist directory: {workdir})")
    train = []
    with chroma.TrainingSession(embedding_set=EMBEDDING_SET, persist_directory=workdir) as session:
        session.bufferlocal(file=str(workdir / "batches" / "chroma-$model-$layer-$timestamp.jsonl.gz"))
        for i in range(2000):
            cls = i % CLASSES
            emb, inferences = fake_model(rng, centers, cls)
            train.append(emb)
            session.log(input_uri=f"train/{i}.txt", embedding=emb, inferences=inferences, label=f"class-{cls}")
        (saved,) = session.save()
    print(f"   saved batch {saved.batch_id[:12]}… with {saved.count} records to {saved.path}")

    print("2. Serving: asking Chroma about 400 production inputs")
    kinds: dict[str, list[np.ndarray]] = {"ordinary": [], "near copy": [], "unseen class": [], "ambiguous": []}
    infs: dict[str, list] = {k: [] for k in kinds}
    for _ in range(100):
        emb, inf = fake_model(rng, centers, int(rng.integers(CLASSES)))
        kinds["ordinary"].append(emb)
        infs["ordinary"].append(inf)
        src = train[int(rng.integers(len(train)))]
        kinds["near copy"].append(src + 0.01 * rng.normal(size=DIM).astype(np.float32))
        infs["near copy"].append(None)
        emb, inf = fake_model(rng, centers, CLASSES)
        kinds["unseen class"].append(emb)
        infs["unseen class"].append(inf)
        a, b = rng.choice(CLASSES, size=2, replace=False)
        mid = (centers[a] + centers[b]) / 2 + 0.35 * rng.normal(size=DIM)
        kinds["ambiguous"].append(mid.astype(np.float32))
        infs["ambiguous"].append([{"label": f"class-{a}", "score": 0.51}, {"label": f"class-{b}", "score": 0.47}])

    session = chroma.QuerySession(embedding_set=EMBEDDING_SET, persist_directory=workdir)
    print(f"   {'input kind':14} {'label it':>9} {'not useful':>11}   most common tags")
    for kind, embs in kinds.items():
        results = session.log(
            input_uri=[f"prod/{kind}/{i}" for i in range(len(embs))], embedding=np.stack(embs), inferences=infs[kind]
        )
        rec = sum(r.training_recommended for r in results)
        useless = sum(r.not_useful for r in results)
        tags = Counter(t for r in results for t in r.recommendations).most_common(2)
        print(f"   {kind:14} {rec:>8}% {useless:>10}%   {', '.join(f'{t} ({n})' for t, n in tags) or '-'}")

    example = session.log(input_uri="prod/unseen/0", embedding=kinds["unseen class"][0])
    print(f"3. One answer in full: {example.recommendation}, tags {list(example.recommendations)}")
    print(
        f"   novelty {example.scores['novelty']:.3f} > threshold {example.thresholds['novelty']:.3f} "
        f"(calibrated: the 95th percentile of the training set's own leave-one-out scores)"
    )
    print(f"   nearest training input: {example.nearest[0].input_uri} (cosine {example.nearest[0].similarity:.3f})")

    vector = base64.b64encode(kinds["near copy"][0].astype("<f4").tobytes()).decode()
    set_id = chroma.embedding_set_id(EMBEDDING_SET)
    cmd = [
        sys.executable,
        "-m",
        "chroma",
        "should-upload",
        "--set",
        set_id[:12],  # a unique prefix of the id is enough, as `python -m chroma sets` shows
        vector,
        "--persist-directory",
        str(workdir),
    ]
    print(f"4. The same from the shell: python -m chroma should-upload --set {set_id[:12]} <BASE64>")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print("   " + "\n   ".join(out.splitlines()[:3]) + "\n   …")

    session.close()  # every input asked about was stored, with its answer, as a production record
    selection = chroma.select(EMBEDDING_SET, n=10, persist_directory=workdir)
    kinds_picked = Counter(p.input_uri.split("/")[1] for p in selection.picks)
    print(
        f"5. What to label next (python -m chroma select --set {set_id[:12]} -n 10): of "
        f"{selection.considered} stored production inputs, {selection.recommended} were recommended; the 10 picks "
        f"are {dict(kinds_picked)}, spread out ({selection.near_duplicates_dropped} near duplicates of a pick left out)"
    )
    for pick in selection.picks[:3]:
        print(
            f"   {pick.rank}. {pick.input_uri}  priority {pick.priority:.2f}  {', '.join(pick.result.recommendations)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
