"""Helpers of the ``publish`` stage: what a release holds, as DVC plots and metrics."""
