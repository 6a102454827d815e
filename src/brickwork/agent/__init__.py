"""Perception-action agents (thesis §3.1): environment, interface, typed representation,
operators (selective input -> functional -> selective update), controller (digestor +
policy), EOP, and agents that are operators themselves (hierarchy, recursion).

Example:
    >>> import torch
    >>> from brickwork.agent import Representation, At
    >>> from brickwork.types import OneHot, Pointer
    >>> rep = Representation({"v": OneHot("b n k"), "p": Pointer("b n")},
    ...                      {"v": torch.eye(3)[[2, 0, 1]].unsqueeze(0),
    ...                       "p": torch.tensor([[1.0, 0.0, 0.0]])})
    >>> At("v", "p").read(rep)
    tensor([[0., 0., 1.]])
"""

from brickwork.agent.agent import Agent, Call, Recurse, SubInterface
from brickwork.agent.controller import EMBEDDING, PREVIOUS, SELECTION, Controller, previous_type
from brickwork.agent.environment import Environment, TensorEnvironment
from brickwork.agent.episode import Episode
from brickwork.agent.interface import Interface
from brickwork.agent.operator import EOP, ModuleOperator, Operator
from brickwork.agent.representation import Representation
from brickwork.agent.selection import At, Field, Selection, Shifted, fit_reason, shift

__all__ = [
    "EMBEDDING",
    "PREVIOUS",
    "SELECTION",
    "Agent",
    "At",
    "Call",
    "Controller",
    "EOP",
    "Environment",
    "Episode",
    "Field",
    "Interface",
    "ModuleOperator",
    "Operator",
    "Recurse",
    "Representation",
    "Selection",
    "Shifted",
    "SubInterface",
    "TensorEnvironment",
    "fit_reason",
    "previous_type",
    "shift",
]
