"""The simpleNN worked check as newtoncnn objects (the numbers live in oracles.py)."""
from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool

import oracles


def worked_layers(example):
    """The layer objects of ``oracles.worked_example()["layer_args"]``."""
    made = []
    for kind, *args in example["layer_args"]:
        if kind == "conv":
            filters, kernel, stride, padding = args
            made.append(Conv(filters, kernel, stride=stride, padding=padding))
        elif kind == "pool":
            made.append(MaxPool(*args))
        else:
            made.append(Dense(*args))
    return made


def worked_problem(dtype="float64"):
    """(example, net, objective, θ) of the simpleNN worked check."""
    ex = oracles.worked_example()
    net = CNN(ex["input_shape"], worked_layers(ex), loss=ex["loss"], dtype=dtype)
    obj = CNNObjective(net, ex["X"], ex["y"], C=ex["C"])
    return ex, net, obj, net.set_weights(ex["weights"])
