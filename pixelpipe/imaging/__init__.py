"""Image maths: perceptual hashes, the searches over them, and the check of a pair.

Pure functions on pixels and arrays: ``hashing`` (imagehash's algorithms, batched),
``hamming`` (all pairs within a distance, nearest neighbours, union-find clusters),
``mih`` (the multi-index hashing plan and tables behind ``hamming.search``) and
``clusters`` (clusters around a centre: every member within the distance of its centre,
or linked to it by a verified pair), ``verify`` (is a pair the same picture: ORB keypoints
that agree with one affine transform), ``vectors`` (all pairs of embedding vectors within
a cosine distance, FAISS) and ``properties`` (per-image statistics for drift).
It imports no other part of pixelpipe: parallel work is given to it as a plain map
function, so the same code runs serially, in a process pool or on Dask.
"""
