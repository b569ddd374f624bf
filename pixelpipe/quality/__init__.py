"""Label maths: box overlap and matching, agreement, consensus, taxonomy roll-up, drift tests.

Pure functions over arrays and plain values, with no I/O and no import of any other part of
pixelpipe, so the stages and the one-shot commands (``pixelpipe agreement``, ...) share one
implementation and each function is tested against published values on its own. A bad
input raises ``inputs.QualityInputError`` (a ``ValueError`` listing every problem with the
image, item or annotator it concerns); the caller adds the file and line.

Modules:
    boxes: intersection over union of ``[x, y, w, h]`` boxes (validate's duplicate-box rule,
        dedupe's label-conflict check, and everything below).
    matching: one-to-one box matching, Hungarian in two passes (same label, then across
        labels) as CVAT's ``match_segments``; ``match_boxes`` for one image.
    batch: the same matching for many images at once, in array operations.
    labels: agreement on image-level class labels: percent agreement, Cohen's kappa per
        pair, Fleiss' kappa, Krippendorff's alpha, per-class specific agreement.
    agreement: agreement on boxes: per-pair matches, precision, recall, F1 and IoU, the
        annotator x annotator F1 matrix, alpha over box clusters, the worst images.
    tallies: the running totals behind ``agreement``, added a chunk of images at a time.
    credit: partial credit between two classes of a hierarchy (a credit function given by
        the caller), summed over matched pairs; ``hierarchical_agreement`` of image labels.
    reliability: Krippendorff's nominal alpha from value counts in bounded memory.
    gold: one annotator against a gold set, CVAT's confusion matrix, precision, recall,
        accuracy and errors (missing, extra, mismatching label), for boxes and labels.
    consensus: clusters with at most one box per annotator, CVAT's quorum, label vote
        with ties sent to review, fused boxes (mean, median, weighted boxes fusion).
    routing: a model's boxes in confidence bands (accept, review, discard), the seeded
        audit draw, and what a reviewer changed (kept, moved, relabelled, deleted, added).
    uncertainty: active-learning scores of predictions (least confidence, margin,
        entropy, Lightly's expansion of a top score), per image the max over boxes.
    label_errors: likely label errors from a model's predictions (cleanlab's
        object-detection scores: overlooked, badly located, swapped).
    inputs: input checks, the error they raise, and JSON-safe numbers.
"""
