"""A user mistake raised in a worker arrives in the parent as itself: one error, no traceback."""

from __future__ import annotations

import pytest
from chunks import refuse_two

from pixelpipe.engine.executor import make_executor
from pixelpipe.errors import PixelpipeError, Problem


@pytest.mark.parametrize("spec", ["local", "dask"])
def test_a_user_error_in_a_worker_arrives_whole(
    spec: str, capfd: pytest.CaptureFixture[str]
) -> None:
    executor = make_executor(spec, 2)
    try:
        with pytest.raises(
            PixelpipeError, match=r"^data/x\.json:3 items\[2\]: refused 2$"
        ) as caught:
            list(executor.map_chunks(refuse_two, [0, 1, 2, 3], 1))
        # the executor still works after a refused chunk
        assert list(executor.map_chunks(refuse_two, [0, 1, 3], 1)) == [0, 2, 6]
    finally:
        executor.close()
    assert caught.value.problems == [
        Problem("refused 2", file="data/x.json", line=3, key="items[2]")
    ]
    assert caught.value.__cause__ is None, "no worker traceback is chained to it"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Compute Failed" not in err, err
