"""What the review tools send back, built from their documented formats, for the review tests."""

from __future__ import annotations

from typing import Any


def label_studio_export(queue: list[dict[str, Any]], reviewer: str) -> list[dict[str, Any]]:
    """What Label Studio exports when a reviewer submits every task as the model drew it."""
    return [
        {
            "id": number,
            "data": task["data"],
            "annotations": [
                {
                    "id": 1000 + number,
                    "completed_by": {"id": 7, "email": reviewer},
                    "was_cancelled": False,
                    "ground_truth": False,
                    "lead_time": 12.5,
                    "created_at": "2026-12-01T10:00:00.000000Z",
                    "updated_at": "2026-12-01T10:00:00.000000Z",
                    "result": [
                        {k: v for k, v in region.items() if k != "score"}
                        for region in task["predictions"][0]["result"]
                    ],
                }
            ],
            "predictions": task["predictions"],
        }
        for number, task in enumerate(queue, start=1)
    ]
