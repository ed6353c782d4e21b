"""Shows which newtoncnn the suite tests (the installed package, not the source tree), and
registers the hypothesis profiles of the fuzz suite (tests/test_fuzz.py)."""
import os

from hypothesis import HealthCheck, settings

import newtoncnn

# Deterministic (derandomize: the same examples on every run, no example database) and
# modest by default, so that the whole suite stays fast; NEWTONCNN_FUZZ=long tries ten
# times as many examples.
_FUZZ = dict(derandomize=True, database=None, deadline=None, print_blob=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("newtoncnn", max_examples=40, **_FUZZ)
settings.register_profile("newtoncnn-long", max_examples=400, **_FUZZ)
settings.load_profile("newtoncnn-long" if os.environ.get("NEWTONCNN_FUZZ") == "long"
                      else "newtoncnn")


def pytest_report_header(config):
    return f"newtoncnn {newtoncnn.__version__} from {newtoncnn.__file__}"


import pytest  # noqa: E402

from newtoncnn import _kernels  # noqa: E402

GEMM_ENGINES = [
    "blas",
    pytest.param("native", marks=pytest.mark.skipif(
        not _kernels.native_sgemm_available(), reason="the native float32 GEMM needs AVX-512F or AVX2 with FMA")),
]


@pytest.fixture(params=GEMM_ENGINES)
def gemm_engine(request):
    """Runs a float32 test once with each GEMM engine of the conv passes."""
    previous = _kernels.set_gemm_engine(request.param)
    yield request.param
    _kernels.set_gemm_engine(previous)
