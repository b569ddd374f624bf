"""Labels from many hands, as the ``agreement`` and ``consensus`` commands and stages use them.

- :mod:`~pixelpipe.review.inputs`: reading several annotators' label files (COCO, Label
  Studio, CVAT XML, CSV, or a dataset directory) into one label set, classes matched by name;
- :mod:`~pixelpipe.review.gather`: per image, who saw it and each annotator's boxes and
  image labels, from a label set or a manifest;
- :mod:`~pixelpipe.review.measure`: the agreement JSON (and each annotator against gold);
- :mod:`~pixelpipe.review.merge`: the consensus labels and the review list;
- :mod:`~pixelpipe.review.report`: the HTML page.

The maths is :mod:`pixelpipe.quality`'s (pure, no I/O); this package adds reading and
writing. It may import :mod:`pixelpipe.formats`, :mod:`pixelpipe.sources`,
:mod:`pixelpipe.dataset`, :mod:`pixelpipe.quality`, :mod:`pixelpipe.taxonomy` (partial
credit) and :mod:`pixelpipe.htmlreport`, never the engine; the stages and the CLI import it.
"""
