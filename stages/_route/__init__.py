"""Helpers of the ``route`` stage: the review queue it writes for Label Studio and CVAT."""
