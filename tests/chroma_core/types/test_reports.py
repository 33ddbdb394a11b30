"""Upload reports: conflicts counted and named, the parts of one batch combined."""

from __future__ import annotations

from chroma_core.types.reports import CONFLICTS_NAMED, UploadReport

SET = "ab" * 20


def test_reports_of_a_batch_sent_in_parts_combine_with_their_conflicts():
    one = UploadReport("b.part0", SET, "training", 3, 1, 1, ("line 2: bad",), 1, ("x",))
    two = UploadReport("b.part1", SET, "training", 4, 2, 0, (), 2, ("y", "z"))
    whole = UploadReport.combined("b", SET, "training", [one, two])
    assert whole == UploadReport("b", SET, "training", 7, 3, 1, ("line 2: bad",), 3, ("x", "y", "z"))
    many = [
        UploadReport(f"p{i}", SET, "training", 60, 0, 0, (), 60, tuple(f"{i}-{j}" for j in range(60))) for i in range(2)
    ]
    assert len(UploadReport.combined("b", SET, "training", many).conflicting_ids) == CONFLICTS_NAMED
