"""Built-in stage kinds: one module per kind, named as the kind (``stages/dedupe.py``)."""
