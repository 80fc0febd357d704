"""The one way the tests find ``shared/data``: found at any depth above the checkout, and when it is missing
a failure under CI=true (never a silent skip there), a skip with its reason elsewhere."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).with_name("conftest.py"))
root_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(root_conftest)


def test_found_at_any_depth_above_the_checkout(tmp_path):
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    deep = tmp_path / "wt" / "issue" / "tests" / "conftest.py"
    assert root_conftest.find_shared_data(deep) == data
    assert root_conftest.find_shared_data(tmp_path / "elsewhere" / "conftest.py") == data


def test_missing_fails_in_ci_and_skips_elsewhere():
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        root_conftest.require_shared_data(None, in_ci=True)
    with pytest.raises(pytest.skip.Exception, match="shared benchmark data not found"):
        root_conftest.require_shared_data(None, in_ci=False)
    assert root_conftest.require_shared_data(Path("/x/shared/data"), in_ci=True) == Path("/x/shared/data")
