"""Sessions: ``tests`` (default), ``client``, ``lint``, ``bench``, ``demo``. ``nox -l`` lists them."""

from __future__ import annotations

import os
import shutil

import nox

_PYPROJECT = nox.project.load_toml("pyproject.toml")

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

# The CPU build of torch, pinned: a plain `torch` requirement would pull a CUDA build of several GB. On this
# project's machines pip finds the 2.13.0 CPU wheel on local disk. Set CHROMA_TORCH to use another spec.
TORCH = os.environ.get("CHROMA_TORCH", "torch==2.13.0")


def _install_torch(session: nox.Session) -> None:
    session.install(TORCH)


def _ensure_chromium(session: nox.Session) -> None:
    # The page tests drive Debian's chromium through Playwright (Playwright's own browser download cannot work
    # on these machines); as root, install it when it is missing. Elsewhere the page tests say what to install.
    if shutil.which("chromium") or not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", "chromium", external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (real servers started by the tests on 127.0.0.1)."""
    _install_torch(session)
    session.install("-e", ".[test,umap]")  # umap: the UMAP projection test runs, not skipped
    _ensure_chromium(session)
    session.env.setdefault("HF_HUB_OFFLINE", "1")
    session.env.setdefault("TRANSFORMERS_OFFLINE", "1")
    session.run("pytest", *(session.posargs or ["tests"]))


@nox.session(default=False)
def client(session: nox.Session) -> None:
    """The suite on a client-only install (``pip install .``, no extras): what needs an extra skips."""
    # The package with its core dependencies only, and the test runner from pyproject's test-core.
    session.install(".", *_PYPROJECT["project"]["optional-dependencies"]["test-core"])
    session.run("pytest", *(session.posargs or ["tests"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict on the packages)."""
    session.install("-e", ".[lint,test]", "nox")
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: each figure printed beside a baseline measured in the same run."""
    _install_torch(session)
    session.install("-e", ".[test]", "faiss-cpu", "hnswlib")  # the libraries bench_index.py compares
    session.env.setdefault("HF_HUB_OFFLINE", "1")
    files = session.posargs or sorted(f"benchmarks/{f}" for f in os.listdir("benchmarks") if f.startswith("bench_"))
    for f in files:
        session.run("python", f)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main job: train, save, query and triage on the embedded engine, no server needed."""
    session.install("-e", ".")
    session.run("python", "examples/demo.py", *session.posargs)
