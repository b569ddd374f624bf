"""Helpers of the ``ingest`` stage.

What workers do (``worker``), the content key of each source file (``keys``) and what the
parent does with the results (``parent``).
"""
