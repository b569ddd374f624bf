"""Data in and out: readers and writers of annotation formats, one small package per format.

- :mod:`~pixelpipe.formats.base`: what readers return (:class:`~pixelpipe.formats.base.LabelSet`),
  the shared helpers and the category-id policy;
- :mod:`~pixelpipe.formats.coco`, :mod:`~pixelpipe.formats.voc`,
  :mod:`~pixelpipe.formats.yolo`, :mod:`~pixelpipe.formats.imagefolder`: ``read`` a
  :class:`~pixelpipe.sources.Tree` into pixelpipe's convention, ``write`` samples back,
  converting coordinates exactly (COCO, VOC and YOLO are packages: ``reader``, ``writer``
  and the parsing of one file, ``document`` or ``config``);
- :mod:`~pixelpipe.formats.labelstudio`, :mod:`~pixelpipe.formats.cvat` (CVAT for images
  1.1 XML; both packages: ``reader``, ``writer``), :mod:`~pixelpipe.formats.labelcsv`
  (``item,annotator,label``): the review tools' files, which name annotators, carry
  image-level class labels and a model's scores (what the readers share:
  :mod:`~pixelpipe.formats.named`; safe XML with lines, VOC's too:
  :mod:`~pixelpipe.formats.xmlparse`);
- :mod:`~pixelpipe.formats.predictions`: a COCO results file, and the checks every model's
  predictions pass (a score in [0, 1], images and classes the dataset has);
- :mod:`~pixelpipe.formats.annotators`: tagging a file's labels with its annotator, and
  merging several annotators' label sets of the same images, classes matched by name;
- :mod:`~pixelpipe.formats.detect`: which format a folder or file is in, and reading it;
- :mod:`~pixelpipe.formats.hf`: a Hugging Face dataset (Parquet shards and a dataset card);
- :mod:`~pixelpipe.formats.export`: writing samples in any format with one class map;
- :mod:`~pixelpipe.formats.pixels`: probing images and applying EXIF orientation;
- :mod:`~pixelpipe.formats.convert`: ``pixelpipe convert``, the same readers and writers
  without a pipeline.

It may import :mod:`pixelpipe.sources`, :mod:`pixelpipe.dataset` and :mod:`pixelpipe.errors`
(and the pure :mod:`pixelpipe.imaging` and :mod:`pixelpipe.quality`), never the engine, the
versions package or a stage. Conventions are in ``docs/formats.md``.
"""
