import json

import numpy as np
import pytest

from embedkit.atomic import atomic_open, save_npy_atomic, write_json_atomic


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write('{"v": 2, "torn')
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


def test_npy_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_npy_atomic(tmp_path / "sub" / "a.npy", a)
    np.testing.assert_array_equal(np.load(tmp_path / "sub" / "a.npy"), a)
