"""Helpers of the ``split`` stage: hashes, groups, assignment, leak check, report."""
