"""Makes the scan tests' model files with Python's own pickle (and numpy, joblib, h5py): real malicious payloads and
torch-style benign checkpoints, laid out the way torch.save lays them out, without torch itself.

    python make-fixtures.py <out-dir>

Nothing here is ever unpickled; the payloads only run `echo pwned`-style commands if someone loads them.
"""
import collections
import io
import json
import marshal
import os
import pickle
import struct
import sys
import tarfile
import types
import zipfile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def write(name, data):
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# --- torch stand-ins: module paths and qualnames as torch has them, so pickle writes the same globals -------------
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks):
    raise RuntimeError("never loaded")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
FloatStorage.__qualname__ = "FloatStorage"
torch.FloatStorage = FloatStorage
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    def __init__(self, key, shape):
        self.key, self.shape = key, shape
        n = 1
        for d in shape:
            n *= d
        self.numel = n

    def __reduce_ex__(self, protocol):
        stride = []
        acc = 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (
            _rebuild_tensor_v2,
            (StorageRef(self.key, self.numel), 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()),
        )


class TorchPickler(pickle.Pickler):
    """torch.save's pickler: storages become persistent ids ('storage', type, key, location, numel)."""

    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def torch_pickle(obj, protocol=2):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def state_dict(layers=2):
    sd = collections.OrderedDict()
    for i in range(layers):
        sd[f"layer{i}.weight"] = Tensor(str(2 * i), [4, 3])
        sd[f"layer{i}.bias"] = Tensor(str(2 * i + 1), [4])
    return sd


def torch_zip(pickle_bytes, name, storages=4, root="archive"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", pickle_bytes)
        z.writestr(f"{root}/byteorder", "little")
        for k in range(storages):
            z.writestr(f"{root}/data/{k}", struct.pack("<12f", *([0.5] * 12)))
        z.writestr(f"{root}/version", "3\n")
        z.writestr(f"{root}/.data/serialization_id", "1234567890")
    write(name, buf.getvalue())


# --- malicious payloads -------------------------------------------------------------------------------------------
class OsSystem:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo pwned')",))


class Exec:
    def __reduce__(self):
        return (exec, ("import os; os.system('echo pwned')",))


class ImportModule:
    def __reduce__(self):
        import importlib

        return (importlib.import_module, ("os",))


def _payload():
    os.system("echo pwned")


def marshal_function():
    """types.FunctionType(marshal.loads(<code>), {}): what pickle cannot write itself, assembled by hand."""
    code = marshal.dumps(_payload.__code__)
    return (
        b"\x80\x04ctypes\nFunctionType\ncmarshal\nloads\n"
        + b"B" + struct.pack("<I", len(code)) + code
        + b"\x85R}\x86R."  # (code,) REDUCE -> code object; ({},) ... TUPLE2 REDUCE -> function
    )


for proto in range(6):
    write(f"evil/os-system-p{proto}.pkl", pickle.dumps({"model": OsSystem(), "epoch": 3}, protocol=proto))
write("evil/eval.pkl", pickle.dumps([Eval()], protocol=2))
write("evil/exec.pkl", pickle.dumps([Exec()], protocol=4))
write("evil/importlib.pkl", pickle.dumps(ImportModule(), protocol=4))
write("evil/marshal-function.pkl", marshal_function())

# STACK_GLOBAL whose module and name come from the memo, after the strings were popped off the stack.
memo_trick = (
    b"\x80\x04"
    + b"\x8c\x02os\x94"  # SHORT_BINUNICODE 'os', MEMOIZE -> 0
    + b"\x8c\x06system\x94"  # SHORT_BINUNICODE 'system', MEMOIZE -> 1
    + b"00"  # POP, POP: nothing left on the stack
    + b"h\x00h\x01"  # BINGET 0, BINGET 1
    + b"\x93"  # STACK_GLOBAL -> os.system
    + b"\x8c\x0aecho pwned\x85R."  # ('echo pwned',) REDUCE STOP
)
write("evil/memo-stack-global.pkl", memo_trick)
write("evil/inst.pkl", b"(S'echo pwned'\nios\nsystem\n.")
write("evil/obj.pkl", b"(cos\nsystem\nS'echo pwned'\no.")
# Protocol 4 resolves dotted names attribute by attribute: posixpath.os.system is os.system.
write("evil/dotted-name.pkl", b"\x80\x04\x8c\x09posixpath\x8c\x09os.system\x93\x8c\x02id\x85R.")
# The module name is computed by a call at load time.
write("evil/dynamic-import.pkl", b"\x80\x04cbuiltins\nstr\n\x8c\x02os\x85R\x8c\x06system\x93\x8c\x02id\x85R.")

evil_sd = state_dict()
evil_sd["_extra"] = OsSystem()
torch_zip(torch_pickle(evil_sd), "evil/torch-zip.pt")

# --- benign -------------------------------------------------------------------------------------------------------
write("benign/state-dict.pkl", torch_pickle(state_dict(), protocol=2))
torch_zip(torch_pickle(state_dict()), "benign/torch-zip.pt")
torch_zip(torch_pickle(state_dict(), protocol=4), "benign/torch-zip-p4.bin", root="pytorch_model")

# Legacy torch.save stream: magic, protocol version, sys_info, the object, storage keys, then raw storages.
legacy = io.BytesIO()
pickle.dump(0x1950A86A20F9469CFC6C, legacy, protocol=2)
pickle.dump(1001, legacy, protocol=2)
pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, legacy, protocol=2)
TorchPickler(legacy, protocol=2).dump(state_dict())
pickle.dump(["0", "1", "2", "3"], legacy, protocol=2)
for k in range(4):
    legacy.write(struct.pack("<q", 12) + struct.pack("<12f", *([0.25] * 12)))
write("benign/legacy.pt", legacy.getvalue())

# The oldest torch format: a tar of pickles.
tar_buf = io.BytesIO()
with tarfile.open(fileobj=tar_buf, mode="w") as tf:
    for name, data in [
        ("sys_info", pickle.dumps({"protocol_version": 1000}, protocol=2)),
        ("pickle", torch_pickle(state_dict())),
        ("tensors", pickle.dumps([], protocol=2)),
    ]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
write("benign/legacy-tar.pt", tar_buf.getvalue())
evil_tar = io.BytesIO()
with tarfile.open(fileobj=evil_tar, mode="w") as tf:
    data = pickle.dumps(OsSystem(), protocol=2)
    info = tarfile.TarInfo("pickle")
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))
    link = tarfile.TarInfo("storages")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    tf.addfile(link)
write("evil/legacy-tar.pt", evil_tar.getvalue())


def safetensors(tensors, metadata=None, extra=b""):
    header = {}
    data = b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data + extra


write(
    "benign/model.safetensors",
    safetensors(
        {"w": ("F32", [4, 3], struct.pack("<12f", *range(12))), "b": ("BF16", [4], b"\x00" * 8)},
        {"format": "pt"},
    ),
)

# --- numpy and joblib ---------------------------------------------------------------------------------------------
import numpy as np  # noqa: E402
import joblib  # noqa: E402

np.save(os.path.join(out, "benign/array.npy"), np.arange(12, dtype="<f4").reshape(3, 4))
np.save(os.path.join(out, "evil/object-array.npy"), np.array([OsSystem(), 1], dtype=object), allow_pickle=True)
np.savez(os.path.join(out, "benign/arrays.npz"), a=np.zeros(5), b=np.ones((2, 2), dtype=np.int32))
np.savez(os.path.join(out, "evil/arrays.npz"), a=np.zeros(5), b=np.array([OsSystem()], dtype=object))
joblib.dump({"coef": np.arange(100, dtype=np.float64), "names": ["a", "b"]}, os.path.join(out, "benign/model.joblib"))
joblib.dump(
    {"coef": np.arange(10, dtype=np.float32), "hook": np.array([OsSystem()], dtype=object)},
    os.path.join(out, "evil/model.joblib"),
)

# --- archives -----------------------------------------------------------------------------------------------------
slip = io.BytesIO()
with zipfile.ZipFile(slip, "w") as z:
    z.writestr("model/config.json", "{}")
    z.writestr("../../../../tmp/evil.sh", "#!/bin/sh\necho pwned\n")
    link = zipfile.ZipInfo("model/weights.bin")
    link.create_system = 3
    link.external_attr = (0o120777 << 16)
    z.writestr(link, "/etc/passwd")
write("evil/zip-slip.zip", slip.getvalue())

bomb = io.BytesIO()
with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    with z.open("weights.bin", "w", force_zip64=True) as w:
        block = b"\x00" * (1 << 20)
        for _ in range(100):
            w.write(block)
write("evil/zip-bomb.zip", bomb.getvalue())

# --- Keras ----------------------------------------------------------------------------------------------------------
lambda_config = {
    "class_name": "Sequential",
    "config": {
        "name": "sequential",
        "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "input"}},
            {
                "class_name": "Lambda",
                "config": {
                    "name": "evil_lambda",
                    "function": ["4wEAAAAAAAAAAAAAAAEAAAADAAAA", None, None],
                    "function_type": "lambda",
                },
            },
            {"class_name": "Dense", "config": {"name": "dense", "units": 2}},
        ],
    },
}
keras_zip = io.BytesIO()
with zipfile.ZipFile(keras_zip, "w") as z:
    z.writestr(
        "config.json",
        json.dumps(
            {
                "module": "keras",
                "class_name": "Sequential",
                "config": {
                    "name": "seq",
                    "layers": [
                        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d"}, "registered_name": None},
                        {
                            "module": "my_company.layers",
                            "class_name": "Backdoor",
                            "config": {"name": "b"},
                            "registered_name": "MyCompany>Backdoor",
                        },
                        {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "l", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}}},
                    ],
                },
            }
        ),
    )
    z.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
    z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
write("evil/model.keras", keras_zip.getvalue())

try:
    import h5py  # noqa: E402

    with h5py.File(os.path.join(out, "evil/model.h5"), "w") as f:
        f.attrs["model_config"] = json.dumps(lambda_config)
        f.attrs["keras_version"] = "2.15.0"
        f.create_dataset("model_weights/dense/kernel", data=np.ones((4, 2), dtype="f4"))
    with h5py.File(os.path.join(out, "benign/weights.h5"), "w") as f:
        f.create_dataset("dense/kernel", data=np.ones((4, 2), dtype="f4"))
except ImportError:
    pass

print("ok")
