"""Shows which newtoncnn the suite tests (the installed package, not the source tree)."""
import newtoncnn


def pytest_report_header(config):
    return f"newtoncnn {newtoncnn.__version__} from {newtoncnn.__file__}"
