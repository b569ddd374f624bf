"""Project tooling: a new project, the demo data, the templates, the stage reference.

``init`` makes a project (``pixelpipe init``), ``demo`` writes the demo data, ``templates/``
holds what a new project starts from (this repository's own ``pipelines/`` and ``configs/``)
and ``reference`` generates ``docs/stages.md`` from the registry.

It may import the engine (to load, compile and describe pipelines), the dataset contract and
the errors; nothing imports it but the command line.
"""
