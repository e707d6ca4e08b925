"""An LSTM that keeps its time axis dynamic through ``torch.export`` and becomes ONNX ``LSTM`` nodes.

``torch.export`` (which the ONNX exporter uses) traces ``nn.LSTM`` through its decomposition, which loops over the
time steps and fixes the sequence length to the example's (pytorch#191855: bidirectional LSTMs). Here the LSTM is a
custom operator ``unmix::lstm`` whose shape rule is symbolic; its eager kernel is ``torch.lstm`` itself, and its
ONNX translation writes one ONNX ``LSTM`` node per layer (gates reordered from PyTorch's ``i, f, g, o`` to ONNX's
``i, o, f, c``). :func:`replace_lstms` swaps it into a copy of a model before export; nothing changes for eager
use of the original model.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

_OP_NAME = "unmix::lstm"


@torch.library.custom_op(_OP_NAME, mutates_args=())
def lstm_op(input: Tensor, weights: List[Tensor], num_layers: int, bidirectional: bool, hidden_size: int) -> Tensor:
    """Multi-layer LSTM from zero states, time-major: ``(nb_frames, batch, input) -> (nb_frames, batch, D * H)``.

    ``weights`` are ``nn.LSTM``'s flat weights (per layer and direction ``w_ih, w_hh[, b_ih, b_hh]``).
    """
    directions = 2 if bidirectional else 1
    has_biases = len(weights) == 4 * num_layers * directions
    zeros = input.new_zeros(num_layers * directions, input.shape[1], hidden_size)
    out, _, _ = torch.lstm(input, [zeros, zeros], weights, has_biases, num_layers, 0.0, False, bidirectional, False)
    return out


@lstm_op.register_fake
def _lstm_op_fake(input: Tensor, weights: List[Tensor], num_layers: int, bidirectional: bool,
                  hidden_size: int) -> Tensor:
    directions = 2 if bidirectional else 1
    return input.new_empty(input.shape[0], input.shape[1], directions * hidden_size)


class ExportLSTM(nn.Module):
    """Drop-in for an inference-mode, time-major ``nn.LSTM`` called without initial states.

    Args:
        lstm: the module to wrap (its parameters are shared, not copied).
    """

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        if lstm.batch_first or lstm.proj_size:
            raise ValueError(
                "ExportLSTM supports time-major LSTMs without projections (batch_first=False, proj_size=0)"
            )
        self.lstm = lstm

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None) -> Tuple[Tensor, None]:
        """``(nb_frames, batch, input)`` -> ``(output, None)`` (the final states are not exported)."""
        if hx is not None:
            raise ValueError("ExportLSTM starts from zero states; initial states are not supported")
        out = lstm_op(input, list(self.lstm._flat_weights), self.lstm.num_layers, self.lstm.bidirectional,
                      self.lstm.hidden_size)
        return out, None


def replace_lstms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``nn.LSTM`` submodules are :class:`ExportLSTM` (parameters deep-copied)."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.LSTM):
                setattr(module, child_name, ExportLSTM(child))
    return model


def onnx_translations() -> Dict[Any, Callable[..., Any]]:
    """``custom_translation_table`` entries for ``torch.onnx.export(dynamo=True)``."""
    from onnxscript import opset18 as op

    def reorder(weight: Any, hidden: int) -> Any:
        """PyTorch gate blocks ``[i, f, g, o]`` along axis 0 -> ONNX ``[i, o, f, g]``."""
        gates = [op.Slice(weight, [k * hidden], [(k + 1) * hidden], [0]) for k in range(4)]
        return op.Concat(gates[0], gates[3], gates[1], gates[2], axis=0)

    def lstm(input: Any, weights: List[Any], num_layers: int, bidirectional: bool, hidden_size: int) -> Any:
        directions = 2 if bidirectional else 1
        per_direction = len(weights) // (num_layers * directions)
        x = input
        for layer in range(num_layers):
            w_list, r_list, b_list = [], [], []
            for direction in range(directions):
                start = (layer * directions + direction) * per_direction
                w_list.append(op.Unsqueeze(reorder(weights[start], hidden_size), [0]))
                r_list.append(op.Unsqueeze(reorder(weights[start + 1], hidden_size), [0]))
                if per_direction == 4:
                    bias = op.Concat(reorder(weights[start + 2], hidden_size),
                                     reorder(weights[start + 3], hidden_size), axis=0)
                    b_list.append(op.Unsqueeze(bias, [0]))
            w = op.Concat(*w_list, axis=0)
            r = op.Concat(*r_list, axis=0)
            direction_name = "bidirectional" if bidirectional else "forward"
            if b_list:
                y, _, _ = op.LSTM(x, w, r, op.Concat(*b_list, axis=0), direction=direction_name,
                                  hidden_size=hidden_size)
            else:
                y, _, _ = op.LSTM(x, w, r, direction=direction_name, hidden_size=hidden_size)
            # (T, D, B, H) -> (T, B, D * H)
            x = op.Reshape(op.Transpose(y, perm=[0, 2, 1, 3]), op.Constant(value_ints=[0, 0, -1]))
        return x

    return {torch.ops.unmix.lstm.default: lstm}
