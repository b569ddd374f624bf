"""Readers and writers of annotation formats, one small module per format.

- :mod:`~pixelpipe.formats.base`: what readers return (:class:`~pixelpipe.formats.base.LabelSet`),
  the shared helpers and the category-id policy;
- :mod:`~pixelpipe.formats.coco`, :mod:`~pixelpipe.formats.voc`,
  :mod:`~pixelpipe.formats.yolo`, :mod:`~pixelpipe.formats.imagefolder`: ``read`` a
  :class:`~pixelpipe.sources.Tree` into pixelpipe's convention, ``write`` samples back,
  converting coordinates exactly;
- :mod:`~pixelpipe.formats.detect`: which format a folder is in, and reading it;
- :mod:`~pixelpipe.formats.export`: writing samples in any format with one class map;
- :mod:`~pixelpipe.formats.pixels`: probing images and applying EXIF orientation.

Conventions are in ``docs/formats.md``.
"""
