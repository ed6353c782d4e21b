"""newtoncnn: train convolutional neural networks by subsampled Gauss-Newton Newton-CG on CPUs."""
from newtoncnn.estimator import CNNClassifier
from newtoncnn.layers import Conv, Dense, MaxPool
from newtoncnn.network import CNN
from newtoncnn.objective import CNNObjective
from newtoncnn.presets import paper_network
from newtoncnn.threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = ["CNN", "CNNClassifier", "CNNObjective", "Conv", "Dense", "MaxPool", "paper_network",
           "get_num_threads", "set_num_threads", "__version__"]
