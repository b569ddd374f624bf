"""Helpers of the ``augment`` stage: recipe loading, mask conversion, the worker."""
