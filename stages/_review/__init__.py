"""Helpers of the label-quality stages (``agreement``, ``consensus``)."""
