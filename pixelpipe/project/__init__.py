"""Project tooling: ``pixelpipe init`` (``init``), the demo data (``demo``), the templates a
new project starts from (``templates/``: this repository's own ``pipelines/`` and ``configs/``)
and the generated stage reference ``docs/stages.md`` (``reference``).

It may import the engine (to load, compile and describe pipelines), the dataset contract and
the errors; nothing imports it but the command line.
"""
