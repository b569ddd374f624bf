"""Helpers of the ``select`` stage: prediction scores, diversity groups, the pick, the batch."""
