"""Helpers of the ``label_issues`` stage.

Modules:
    select: which annotations are the checked labels and which the model's predictions,
        the params checks naming unknown annotators, and the label sets to score (one per
        image and label annotator).
    report: ``report.json`` (every flagged label set with its boxes) and ``report.html``
        (the worst ones, labels and predictions drawn over the photo).
"""
