"""Private helpers of the ``validate`` stage: rules, guarded workers, checks, report.

The registry ignores this package (its name starts with ``_``); ``stages/validate.py`` is
the stage.
"""
