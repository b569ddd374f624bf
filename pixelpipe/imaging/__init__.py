"""Image maths: perceptual hashes and the Hamming search over them.

Pure functions on pixels and arrays: ``hashing`` (imagehash's algorithms, batched),
``hamming`` (all pairs within a distance, nearest neighbours, union-find clusters),
``mih`` (the multi-index hashing plan and tables behind ``hamming.search``) and
``clusters`` (clusters around a centre: every member within the distance of its centre).
It imports no other part of pixelpipe: parallel work is given to it as a plain map
function, so the same code runs serially, in a process pool or on Dask.
"""
