"""The page: a set's map in the browser (``/ui`` on the service, ``chroma ui`` on the embedded engine)."""

from chroma_core.ui.projection import CATEGORIES, Projection, project

__all__ = ["CATEGORIES", "Projection", "project"]
