"""pixelpipe: declarative, versioned pipelines for computer-vision datasets.

The public API a stage module uses: :func:`stage`, :class:`StageParams`,
:class:`Dependency`, :class:`StageContext`, :class:`StageResult`, the dataset contract
(:class:`Dataset`, :class:`DatasetBuilder`, :class:`Sample`, :class:`Annotation`,
:class:`Category`) and :class:`PixelpipeError` for user mistakes.
"""

from pixelpipe.card import write_card
from pixelpipe.context import ImageStore, StageContext
from pixelpipe.dataset import Annotation, Category, Dataset, DatasetBuilder, Sample
from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.stage import Dependency, StageKind, StageParams, StageResult, stage

__version__ = "0.1.0"

__all__ = [
    "Annotation",
    "Category",
    "Dataset",
    "DatasetBuilder",
    "Dependency",
    "ImageStore",
    "PixelpipeError",
    "Problem",
    "Sample",
    "StageContext",
    "StageKind",
    "StageParams",
    "StageResult",
    "stage",
    "write_card",
]
