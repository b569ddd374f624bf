"""pixelpipe: declarative, versioned pipelines for computer-vision datasets.

This module is the public API for stage authors, the built-in stages and custom ones alike
(a stage imports from here and from the pure packages :mod:`pixelpipe.dataset`,
:mod:`pixelpipe.formats`, :mod:`pixelpipe.sources`, :mod:`pixelpipe.imaging` and
:mod:`pixelpipe.quality`, never from the engine's modules):

- the contract of a kind: :func:`stage`, :class:`StageParams`, :class:`Dependency`,
  :class:`Plot`, :class:`StageKind`, :class:`StageResult`, and what a step gets,
  :class:`StageContext`;
- the dataset contract: :class:`Dataset`, :class:`DatasetBuilder`, :class:`Sample`,
  :class:`Annotation`, :class:`Category`, :class:`ImageStore`;
- parallel work: :class:`Executor` (``ctx.executor``) and :func:`chunk_size`;
  ``ctx.cached_map`` (per-item results reused across runs); what workers read pixels from,
  ``ctx.pixels(image)``, as :data:`Pixels`, opened with :func:`open_pixels` or
  :func:`read_pixels`;
- seeds: :func:`derive_seed`, the key-derived seed behind ``ctx.rng``;
- config files a stage reads (``configs:``): :func:`load_file` (YAML with the line of every
  key), :class:`Located`, :data:`KeyPath` and :func:`validation_problems` (pydantic errors
  as ``FILE:LINE key.path: message`` problems);
- user mistakes: :class:`PixelpipeError`, :class:`Problem`, :func:`did_you_mean`;
- the dataset card a publishing step writes: :func:`write_card`.
"""

from pixelpipe.dataset import Annotation, Category, Dataset, DatasetBuilder, ImageStore, Sample
from pixelpipe.dataset.images import Pixels, open_pixels, read_pixels
from pixelpipe.engine.context import StageContext, derive_seed
from pixelpipe.engine.executor import Executor, chunk_size
from pixelpipe.engine.loader import validation_problems
from pixelpipe.engine.stage import (
    Dependency,
    Plot,
    StageKind,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.engine.yamlio import KeyPath, Located, load_file
from pixelpipe.errors import PixelpipeError, Problem, did_you_mean
from pixelpipe.versions.card import write_card

__version__ = "0.1.0"

__all__ = [
    "Annotation",
    "Category",
    "Dataset",
    "DatasetBuilder",
    "Dependency",
    "Executor",
    "ImageStore",
    "KeyPath",
    "Located",
    "PixelpipeError",
    "Pixels",
    "Plot",
    "Problem",
    "Sample",
    "StageContext",
    "StageKind",
    "StageParams",
    "StageResult",
    "chunk_size",
    "derive_seed",
    "did_you_mean",
    "load_file",
    "open_pixels",
    "read_pixels",
    "stage",
    "validation_problems",
    "write_card",
]
