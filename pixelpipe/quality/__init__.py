"""Label maths: box overlap and matching, agreement, consensus, taxonomy roll-up, drift tests.

Pure functions over arrays and plain values, with no I/O and no import of any other part of
pixelpipe, so the stages and the one-shot commands (``pixelpipe agreement``, ...) share one
implementation and each function is tested against published values on its own. Today it
holds ``boxes`` (intersection over union of ``[x, y, w, h]`` boxes), used by validate's
duplicate-box rule and dedupe's label-conflict check.
"""
