"""Image maths: perceptual hashes and the Hamming search over them.

Pure functions on pixels and arrays (``hashing``: imagehash's algorithms, batched;
``hamming``: all pairs within a distance by multi-index hashing, union-find clusters).
It imports no other part of pixelpipe: parallel work is given to it as a plain map
function, so the same code runs serially, in a process pool or on Dask.
"""
