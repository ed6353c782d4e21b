"""Shows which newtoncnn the suite tests (the installed package, not the source tree)."""
import newtoncnn


def pytest_report_header(config):
    return f"newtoncnn {newtoncnn.__version__} from {newtoncnn.__file__}"


import pytest  # noqa: E402

from newtoncnn import _kernels  # noqa: E402

GEMM_ENGINES = [
    "blas",
    pytest.param("native", marks=pytest.mark.skipif(
        not _kernels.native_sgemm_available(), reason="the native float32 GEMM needs AVX-512F")),
]


@pytest.fixture(params=GEMM_ENGINES)
def gemm_engine(request):
    """Runs a float32 test once with each GEMM engine of the conv passes."""
    previous = _kernels.set_gemm_engine(request.param)
    yield request.param
    _kernels.set_gemm_engine(previous)
