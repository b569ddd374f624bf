"""The engine: a pipeline file in, a ``dvc.yaml`` out, and one stage run.

It owns the YAML reader with line numbers (``yamlio``), the pipeline spec and its loader
(``spec``, ``loader``), the kind registry and the stage contract (``registry``, ``stage``,
``context``), the compiler (``compile``), the runner with its executors and progress
(``runner``, ``executor``, ``progress``), the cleaning of what killed runs leave in ``data/``
(``workspace``) and the MLflow run of each stage (``tracking``, on the store that
``tracking_store`` opens under a lock).
It may import :mod:`pixelpipe.errors` and :mod:`pixelpipe.dataset`, and nothing else of
pixelpipe: it knows no stage (kinds are found by the registry at run time), no format, no
source and no versions module.
"""
