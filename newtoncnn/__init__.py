"""newtoncnn: train convolutional neural networks by subsampled Gauss-Newton Newton-CG on CPUs."""
from newtoncnn.layers import Conv, Dense, MaxPool
from newtoncnn.network import CNN
from newtoncnn.newton import NewtonCG, load_checkpoint
from newtoncnn.objective import CNNObjective
from newtoncnn.presets import paper_network
from newtoncnn.sgd import SGD
from newtoncnn.threads import get_num_threads, set_num_threads
from newtoncnn._version import __version__

__all__ = ["CNN", "CNNClassifier", "CNNObjective", "Conv", "Dense", "MaxPool", "NewtonCG", "SGD",
           "load_checkpoint", "paper_network", "get_num_threads", "set_num_threads",
           "__version__"]


def __getattr__(name):
    # The estimator needs scikit-learn, which takes most of a second to import: load it
    # on first use, so that `import newtoncnn` stays light.
    if name == "CNNClassifier":
        from newtoncnn.estimator import CNNClassifier
        globals()[name] = CNNClassifier
        return CNNClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
