"""Private helpers of the ``drift`` stage: the tests' inputs, cached image properties, report."""
