"""`from_module`: any traceable ``nn.Module`` → :class:`ComputationGraph`, through torch.fx.

Three steps: trace the module symbolically (torch.fx, with nape's atomic modules kept whole); run
the traced graph once on a zero-free random input, recording each node's output shape and the FLOPs
torch's own ``FlopCounterMode`` attributes to it; then keep only the nodes that compute tensors,
folding parameters into the op that uses them and collapsing bookkeeping (``size``, shape arithmetic,
``getitem`` on tuples, ``contiguous``) so that edges are real data flow.
"""
from __future__ import annotations

import operator
import os
import traceback
import warnings
from typing import Any, Sequence

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .cg import FEATURES, ComputationGraph
from .vocab import OP_ID

_TORCH_DIR = os.path.dirname(torch.__file__)

# --- what each fx target means -------------------------------------------------------------------
_MODULE_OPS: list[tuple[type, str]] = [
    (nn.Linear, "linear"), (nn.Bilinear, "linear"),
    (nn.modules.batchnorm._BatchNorm, "batchnorm"), (nn.LayerNorm, "layernorm"), (nn.GroupNorm, "groupnorm"),
    (nn.ReLU, "relu"), (nn.ReLU6, "relu6"), (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"),
    (nn.Hardswish, "hardswish"), (nn.Hardsigmoid, "hardsigmoid"), (nn.SiLU, "silu"), (nn.GELU, "gelu"),
    (nn.Softmax, "softmax"),
    (nn.modules.pooling._MaxPoolNd, "maxpool"), (nn.modules.pooling._AvgPoolNd, "avgpool"),
    (nn.Flatten, "flatten"), (nn.Unflatten, "reshape"), (nn.Identity, "identity"),
    (nn.modules.dropout._DropoutNd, "dropout"),
    (nn.modules.padding._ConstantPadNd, "pad"), (nn.modules.padding._ReflectionPadNd, "pad"),
    (nn.modules.padding._ReplicationPadNd, "pad"), (nn.ZeroPad2d, "pad"),
    (nn.Upsample, "upsample"),
]
_FUNCTION_OPS: dict[Any, str] = {
    operator.add: "add", operator.iadd: "add", operator.sub: "add", operator.isub: "add",
    torch.add: "add", torch.sub: "add",
    operator.mul: "mul", operator.imul: "mul", operator.truediv: "mul", torch.mul: "mul", torch.div: "mul",
    torch.cat: "concat", torch.concat: "concat", torch.stack: "concat",
    operator.matmul: "matmul", torch.matmul: "matmul", torch.bmm: "matmul", torch.mm: "matmul",
    F.linear: "linear", F.conv1d: "conv", F.conv2d: "conv", F.conv3d: "conv",
    F.batch_norm: "batchnorm", F.layer_norm: "layernorm", F.group_norm: "groupnorm",
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.tanh: "tanh", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
    F.silu: "silu", F.gelu: "gelu", F.softmax: "softmax", torch.softmax: "softmax",
    F.max_pool1d: "maxpool", F.max_pool2d: "maxpool", F.avg_pool1d: "avgpool", F.avg_pool2d: "avgpool",
    torch.mean: "mean", torch.flatten: "flatten", torch.reshape: "reshape", torch.permute: "reshape",
    torch.transpose: "reshape", F.pad: "pad", F.dropout: "dropout", F.interpolate: "upsample",
    torch.split: "split", torch.chunk: "split", operator.getitem: "slice",
}
_METHOD_OPS: dict[str, str] = {
    "add": "add", "add_": "add", "sub": "add", "mul": "mul", "mul_": "mul", "div": "mul",
    "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "matmul": "matmul",
    "mean": "mean", "flatten": "flatten", "view": "reshape", "reshape": "reshape", "permute": "reshape",
    "transpose": "reshape", "squeeze": "reshape", "unsqueeze": "reshape", "expand": "reshape",
    "split": "split", "chunk": "split",
}
# calls that move no data: their consumers read straight from their input
_PASS_THROUGH_METHODS = {"contiguous", "clone", "to", "type", "float", "double", "half", "detach", "cpu"}
# GENNAPE drops add/mul/concat nodes with a single tensor input (e.g. ``0 + x`` from ``sum``)
_MERGE_OPS = {"add", "mul", "concat"}


class _Tracer(fx.Tracer):
    """torch.fx tracer that keeps modules with a ``cg_op`` attribute (nape's atomic ops) whole."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return getattr(m, "cg_op", None) is not None or super().is_leaf_module(m, qualname)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        # fx finds a directly read parameter's name by scanning every parameter of the root, which
        # is quadratic for networks that read many (e.g. NAGO's gates); look it up in a table instead
        if isinstance(attr_val, nn.Parameter):
            if getattr(self, "_param_names", None) is None or self._param_root is not self.root:
                self._param_root = self.root
                self._param_names = {id(p): name for name, p in self.root.named_parameters()}
            name = self._param_names.get(id(attr_val))
            if name is not None:
                if name not in parameter_proxy_cache:
                    parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
                return parameter_proxy_cache[name]
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def trace(module: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``module``; an untraceable module raises TypeError naming the call."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as err:  # fx raises many types; all mean "cannot trace"
        raise TypeError(
            f"cannot trace {type(module).__name__} with torch.fx: {err}{_user_frame(err)}. "
            "Rewrite the offending call without data-dependent Python control flow, or wrap it in a "
            "module with a `cg_op` attribute so that it becomes one node."
        ) from err
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def _user_frame(err: BaseException) -> str:
    """' at file:line in func: `code`' for the innermost frame outside torch, if any."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if not frame.filename.startswith(_TORCH_DIR) and not frame.filename.endswith("trace.py"):
            return f" (at {frame.filename}:{frame.lineno} in {frame.name}: `{(frame.line or '').strip()}`)"
    return ""


class _Recorder(fx.Interpreter):
    """Runs the traced graph, keeping each node's output shape(s) and FLOPs (not the tensors)."""

    def __init__(self, gm: fx.GraphModule, counter: FlopCounterMode):
        super().__init__(gm)
        self.counter = counter
        self.shapes: dict[fx.Node, Any] = {}
        self.flops: dict[fx.Node, int] = {}

    def run_node(self, n: fx.Node) -> Any:
        before = self.counter.get_total_flops()
        try:
            out = super().run_node(n)
        except Exception as err:
            raise ValueError(
                f"the input shape does not fit the module: {n.op} `{n.target}` (fx node {n.name}) failed "
                f"with: {err}. Check the input shape (batch, channels, height, width) the network expects."
            ) from err
        self.flops[n] = self.counter.get_total_flops() - before
        self.shapes[n] = _shape_of(out)
        return out


def _shape_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return [tuple(v.shape) for v in value]
    return None


def _chw(shape: Any) -> tuple[int, int, int]:
    """(channels, height, width) of a tensor shape with a batch dimension first."""
    if isinstance(shape, list):
        shape = shape[0]
    if shape is None:
        return (0, 0, 0)
    if len(shape) <= 1:
        return (int(shape[0]) if shape else 1, 1, 1)
    rest = list(shape[1:]) + [1, 1]
    return (int(rest[0]), int(rest[1]), int(np.prod(rest[2:])))


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _tensor_args(n: fx.Node, shapes: dict[fx.Node, Any]) -> list[fx.Node]:
    """The fx nodes among n's (flattened) arguments whose values are tensors or tensor lists."""
    found: list[fx.Node] = []
    fx.node.map_arg((n.args, n.kwargs), lambda a: found.append(a) if shapes.get(a) is not None else None)
    return found


def from_module(module: nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]], *,
                seed: int = 0) -> ComputationGraph:
    """The computation graph of ``module`` for an input of ``input_shape`` (batch first, e.g.
    ``(1, 3, 32, 32)``; a list of shapes for a module with several inputs).

    Nodes are atomic ops (one per fx call that computes tensors), with kernel, stride, groups,
    channels and sizes in and out, parameters (folded in from the weights the op uses) and FLOPs
    (``FlopCounterMode``). Their sums equal the module's own parameter and FLOP counts when every
    parameter takes part in the forward pass. Unknown ops become ``oov`` nodes with a warning.
    """
    shapes_in = _input_shapes(input_shape)
    gm = trace(module)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(shapes_in):
        raise ValueError(f"{type(module).__name__}.forward takes {len(placeholders)} tensor input(s), "
                         f"but {len(shapes_in)} input shape(s) were given")
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(s, generator=generator) for s in shapes_in]
    was_training = module.training
    module.eval()  # batch statistics of a batch of one would fail; shapes and FLOPs are the same
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            recorder = _Recorder(gm, counter)
            recorder.run(*inputs)
    finally:
        module.train(was_training)
    return _build_graph(gm, recorder, meta={"input_shape": [list(s) for s in shapes_in],
                                            "module": type(module).__name__})


def _input_shapes(input_shape) -> list[tuple[int, ...]]:
    try:
        if all(isinstance(d, (int, np.integer)) for d in input_shape):
            shapes = [tuple(int(d) for d in input_shape)]
        else:
            shapes = [tuple(int(d) for d in s) for s in input_shape]
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be a shape like (1, 3, 32, 32) or a list of shapes, "
                         f"got {input_shape!r}") from None
    for s in shapes:
        if len(s) < 2 or min(s) < 1:
            raise ValueError(f"input shape {s} needs a batch dimension first and positive sizes, "
                             "e.g. (1, 3, 32, 32)")
    return shapes


def _build_graph(gm: fx.GraphModule, rec: _Recorder, meta: dict) -> ComputationGraph:
    modules = dict(gm.named_modules())
    alias: dict[fx.Node, int | None] = {}  # fx node → CG node carrying its value (None: not data)
    ops: list[int] = []
    rows: list[list[int]] = []
    names: list[str] = []
    edges: list[tuple[int, int]] = []
    counted: set[int] = set()  # ids of parameters and modules already credited
    pending_params: dict[fx.Node, int] = {}  # get_attr nodes → parameters awaiting their consumer
    unknown: set[str] = set()

    def add_node(op: str, name: str, sources: list[int], shape_in, shape_out, *, kernel=(0, 0),
                 stride=1, groups=1, params=0, flops=0) -> int:
        index = len(ops)
        c_in, h_in, w_in = _chw(shape_in)
        c_out, h_out, w_out = _chw(shape_out)
        ops.append(OP_ID[op])
        rows.append([kernel[0], kernel[1], stride, groups, c_in, c_out, h_in, h_out, w_in, w_out, params, flops])
        names.append(name)
        seen: set[int] = set()
        for src in sources:
            if src not in seen:
                seen.add(src)
                edges.append((src, index))
        return index

    for n in gm.graph.nodes:
        shape = rec.shapes.get(n)
        if n.op == "placeholder":
            alias[n] = add_node("input", n.name, [], shape, shape)
            continue
        if n.op == "get_attr":
            value = _fetch_attr(gm, n.target)
            if isinstance(value, nn.Parameter) and id(value) not in counted:
                counted.add(id(value))
                pending_params[n] = value.numel()
            alias[n] = None
            continue
        tensor_args = _tensor_args(n, rec.shapes)
        sources = [alias[a] for a in tensor_args if alias.get(a) is not None]
        params = sum(pending_params.pop(a, 0) for a in _all_args(n))
        if n.op == "output":
            first = rec.shapes.get(tensor_args[0]) if tensor_args else None
            add_node("output", "output", sources, first, first)
            continue
        if shape is None:  # size(), shape arithmetic, Python scalars: bookkeeping, no data flow
            alias[n] = None
            continue
        if n.op == "call_function" and n.target is operator.getitem and isinstance(rec.shapes.get(n.args[0]), list):
            alias[n] = alias.get(n.args[0])  # one tensor out of a split: read from the split node
            continue
        if n.op == "call_method" and n.target in _PASS_THROUGH_METHODS and sources:
            alias[n] = sources[0]
            continue
        op, attrs = _classify(n, modules, rec.shapes)
        if n.op == "call_module":
            module = modules[n.target]
            if id(module) not in counted:
                counted.add(id(module))
                params += sum(p.numel() for p in module.parameters() if id(p) not in counted)
                counted.update(id(p) for p in module.parameters())
        if op in _MERGE_OPS and len(tensor_args) == 1 and sources and not params:
            alias[n] = sources[0]  # a merge of one tensor moves no data; one with weights stays a node
            continue
        if op == "oov":
            unknown.add(attrs.pop("what"))
        shape_in = rec.shapes.get(tensor_args[0]) if tensor_args else shape
        name = str(n.target) if n.op == "call_module" else n.name
        alias[n] = add_node(op, name, sources, shape_in, shape, params=params, flops=rec.flops.get(n, 0), **attrs)

    for what in sorted(unknown):
        warnings.warn(f"from_module: {what} is not in nape's op vocabulary; it is kept as an 'oov' node",
                      stacklevel=3)
    return ComputationGraph(ops=ops, features=np.array(rows, dtype=np.int64).reshape(-1, len(FEATURES)),
                            edges=np.array(edges, dtype=np.int64).reshape(-1, 2), names=names, meta=meta)


def _all_args(n: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((n.args, n.kwargs), found.append)
    return found


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    value: Any = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _classify(n: fx.Node, modules: dict[str, nn.Module], shapes) -> tuple[str, dict]:
    """The op name of an fx node and its kernel/stride/groups attributes."""
    if n.op == "call_module":
        return _classify_module(modules[n.target])
    if n.op == "call_function":
        op = _FUNCTION_OPS.get(n.target)
        if op in ("conv", "linear"):
            weight = shapes.get(n.args[1]) if len(n.args) > 1 else None
            if op == "linear" or weight is None:
                return op, {"kernel": (1, 1)}
            stride = n.kwargs.get("stride", n.args[3] if len(n.args) > 3 else 1)
            groups = int(n.kwargs.get("groups", n.args[6] if len(n.args) > 6 else 1))
            c_in = _chw(shapes.get(n.args[0]))[0]
            return _conv_kind(groups, c_in), {"kernel": _pair(tuple(weight[2:]) or 1), "stride": _pair(stride)[0],
                                              "groups": groups}
        if op is not None:
            return op, {}
        return "oov", {"what": f"function {getattr(n.target, '__name__', n.target)}"}
    op = _METHOD_OPS.get(n.target)
    return (op, {}) if op else ("oov", {"what": f"tensor method .{n.target}()"})


def _classify_module(m: nn.Module) -> tuple[str, dict]:
    if getattr(m, "cg_op", None) is not None:
        return m.cg_op, {"stride": int(getattr(m, "stride", 1))}
    if isinstance(m, nn.modules.conv._ConvNd):
        return _conv_kind(m.groups, m.in_channels), {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride)[0],
                                                     "groups": m.groups}
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)):
        size = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,)
        if all(s == 1 for s in size):
            return "global_pool", {}
        return ("avgpool" if "Avg" in type(m).__name__ else "maxpool"), {}
    for cls, op in _MODULE_OPS:
        if isinstance(m, cls):
            attrs: dict[str, Any] = {}
            if op in ("maxpool", "avgpool"):
                attrs = {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size)[0]}
            elif op == "linear":
                attrs = {"kernel": (1, 1)}
            return op, attrs
    return "oov", {"what": f"module {type(m).__name__}"}


def _conv_kind(groups: int, c_in: int) -> str:
    if groups == 1:
        return "conv"
    return "depthwise" if groups == c_in else "group_conv"
