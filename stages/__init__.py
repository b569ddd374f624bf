"""Built-in stage kinds: one module per kind, named as the kind (``stages/dedupe.py``).

Private helpers live in ``stages/_<kind>/``; the registry ignores names that start with
``_``. A stage imports the public API (:mod:`pixelpipe`) and the pure packages
(:mod:`pixelpipe.dataset`, :mod:`pixelpipe.formats`, :mod:`pixelpipe.sources`,
:mod:`pixelpipe.imaging`, :mod:`pixelpipe.quality`, :mod:`pixelpipe.errors`, the HTML report
helpers :mod:`pixelpipe.htmlreport`, and :mod:`pixelpipe.review`), exactly what a custom
stage outside this repository has, and never the engine's modules.
"""
