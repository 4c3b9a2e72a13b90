"""Open Inference Protocol (KServe v2 / Triton HTTP) request decoding and response encoding, framework-free.

JSON form: {"inputs": [{"name", "shape", "datatype", "data": [...]}], "outputs": [...], "parameters": {...}}.
Binary tensor data extension (what tritonclient.http sends by default): the body is the JSON header
followed by raw little-endian tensor bytes; the header's length is in the `Inference-Header-Content-Length`
HTTP header, and each binary input has `parameters.binary_data_size`. An output is sent binary when the
request's output entry has `parameters.binary_data: true`, or when no outputs are named and the request
has `parameters.binary_data_output: true` (tritonclient's default); the response then carries the same
header and `binary_data_size` per output.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any

import numpy as np

from tgan_deploy.errors import TganError

HEADER_LENGTH = "Inference-Header-Content-Length"
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(bool), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}
DATATYPE_OF = {v: k for k, v in DTYPES.items()}


class ProtocolError(TganError, ValueError):
    """A request that does not follow the Open Inference Protocol (or asks for what this model lacks)."""


@dataclasses.dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    parameters: dict[str, Any]
    outputs: dict[str, bool] | None  # name -> binary; None: every output, binary if binary_data_output


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an infer request body (JSON, or JSON header + binary tensors) into numpy inputs."""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH} must be an integer, got {header_length[:40]!r}") from None
        if not 0 <= size <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {size} is outside the body ({len(body)} bytes)")
    else:
        size = len(body)
    try:
        header = json.loads(body[:size])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"the request is not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    header = _object(header, "the request")
    raw = memoryview(body)[size:]
    if not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise ProtocolError('the request has no "inputs" list: send e.g. {"inputs": [{"name": "seed", '
                            '"shape": [2], "datatype": "INT64", "data": [3, 17]}]}')
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for entry in header["inputs"]:
        tensor, used = _decode_input(_object(entry, "each input"), raw[offset:])
        name = entry["name"]
        if name in inputs:
            raise ProtocolError(f"input {name!r} is given twice")
        inputs[name] = tensor
        offset += used
    if offset != len(raw):
        raise ProtocolError(f"{len(raw) - offset} bytes of binary data follow the inputs that no input claims")
    parameters = _object(header.get("parameters", {}), '"parameters"')
    outputs = None
    if "outputs" in header:
        if not isinstance(header["outputs"], list):
            raise ProtocolError('"outputs" must be a list')
        outputs = {}
        for entry in header["outputs"]:
            entry = _object(entry, "each output")
            params = _object(entry.get("parameters", {}), "an output's parameters")
            outputs[str(entry.get("name"))] = bool(params.get("binary_data", False))
    request_id = header.get("id")
    return InferRequest(None if request_id is None else str(request_id), inputs, parameters, outputs)


def _decode_input(entry: dict[str, Any], raw: memoryview) -> tuple[np.ndarray, int]:
    name, datatype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
    if not isinstance(name, str):
        raise ProtocolError('every input needs a "name" string')
    if datatype not in DTYPES:
        raise ProtocolError(f"input {name!r}: datatype {datatype!r} is not one of {', '.join(DTYPES)}")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape)):
        raise ProtocolError(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    dtype, count = DTYPES[datatype], math.prod(shape)
    params = _object(entry.get("parameters", {}), f"input {name!r}'s parameters")
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size != count * dtype.itemsize:
            raise ProtocolError(f"input {name!r}: binary_data_size {size!r} does not match shape {shape} of "
                                f"{datatype} ({count * dtype.itemsize} bytes)")
        if size > len(raw):
            raise ProtocolError(f"input {name!r}: binary_data_size {size} but only {len(raw)} bytes follow")
        return np.frombuffer(raw[:size], dtype.newbyteorder("<")).astype(dtype).reshape(shape), size
    data = entry.get("data")
    if data is None:
        raise ProtocolError(f"input {name!r} has neither \"data\" nor parameters.binary_data_size")
    flat = _flatten(data)
    if len(flat) != count:
        raise ProtocolError(f"input {name!r}: {len(flat)} values do not fill shape {shape} ({count} values)")
    if any(isinstance(v, bool) != (dtype == np.dtype(bool)) or not isinstance(v, numbers.Real) for v in flat):
        raise ProtocolError(f"input {name!r}: data must be {datatype} numbers")
    if dtype.kind in "iu" and any(not isinstance(v, numbers.Integral) for v in flat):
        raise ProtocolError(f"input {name!r}: {datatype} data must be integers, got e.g. "
                            f"{next(v for v in flat if not isinstance(v, numbers.Integral))!r}")
    try:
        return np.asarray(flat, dtype).reshape(shape), 0
    except OverflowError:
        raise ProtocolError(f"input {name!r}: a value does not fit {datatype}") from None


def _flatten(data: Any) -> list[Any]:
    """The protocol allows nested (row-major) or flat data lists."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def encode_response(model: str, request_id: str | None, outputs: dict[str, np.ndarray],
                    binary: dict[str, bool]) -> tuple[bytes, dict[str, str]]:
    """(body, extra HTTP headers) for an infer response; `binary[name]` picks the binary extension per output."""
    entries, blobs = [], []
    for name, array in outputs.items():
        entry: dict[str, Any] = {"name": name, "datatype": DATATYPE_OF[array.dtype], "shape": list(array.shape)}
        if binary.get(name, False):
            blob = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    header: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": entries}
    if request_id is not None:
        header["id"] = request_id
    text = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return text, {}
    return b"".join([text, *blobs]), {HEADER_LENGTH: str(len(text))}
