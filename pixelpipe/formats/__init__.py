"""Readers and writers of annotation formats, one small module per format.

Each module has pure functions: ``load`` parses files into pixelpipe's
:class:`~pixelpipe.dataset.Category` and :class:`~pixelpipe.dataset.Annotation` values,
converting coordinates exactly; ``dump`` does the reverse. Conventions are in
``docs/formats.md``.
"""
