"""Writes one small file per weight format with its reference library (safetensors, numpy, gguf, h5py) and prints
what that library reads back (names, dtypes, shapes, byte sizes) as JSON: the known answers the format readers in
activities/formats are checked against.

usage: make-fixtures.py <dir>
"""
import json
import os
import sys

import numpy as np


def main(out):
    answers = {}

    from safetensors import safe_open
    from safetensors.numpy import save_file

    st = os.path.join(out, "model.safetensors")
    save_file(
        {
            "embed.weight": np.zeros((10, 4), dtype=np.float16),
            "dense.weight": np.ones((4, 3), dtype=np.float32),
            "steps": np.zeros((2,), dtype=np.int64),
            "mask": np.zeros((5,), dtype=np.bool_),
        },
        st,
        metadata={"format": "np"},
    )
    with safe_open(st, framework="np") as f:
        answers["safetensors"] = {
            "metadata": f.metadata(),
            "tensors": {
                k: {"shape": list(f.get_tensor(k).shape), "bytes": int(f.get_tensor(k).nbytes)} for k in f.keys()
            },
        }

    npy = os.path.join(out, "array.npy")
    arr = np.arange(12, dtype="<f4").reshape(3, 4)
    np.save(npy, arr)
    big = os.path.join(out, "big-endian.npy")
    np.save(big, np.zeros((2, 5), dtype=">i8"))
    answers["npy"] = {
        "array.npy": {"shape": list(arr.shape), "bytes": int(arr.nbytes), "descr": arr.dtype.str},
        "big-endian.npy": {"shape": [2, 5], "bytes": 80, "descr": ">i8"},
    }

    import gguf
    from gguf.quants import quantize

    gg = os.path.join(out, "model.gguf")
    w = gguf.GGUFWriter(gg, "llama")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(50)])
    rng = np.random.default_rng(3)
    w.add_tensor("token_embd.weight", rng.standard_normal((50, 32)).astype(np.float32))
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((32, 32)).astype(np.float16))
    q8 = quantize(rng.standard_normal((64, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = gguf.GGUFReader(gg)
    answers["gguf"] = {
        "architecture": "llama",
        "tensors": {
            t.name: {"type": t.tensor_type.name, "elements": int(t.n_elements), "bytes": int(t.n_bytes)}
            for t in r.tensors
        },
    }

    import h5py

    h5 = os.path.join(out, "model.h5")
    with h5py.File(h5, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        f.attrs["keras_version"] = "2.15.0"
        f.create_dataset("model_weights/dense/kernel", data=np.ones((4, 2), dtype=np.float32))
        f.create_dataset("model_weights/dense/bias", data=np.zeros((2,), dtype=np.float16))
        f.create_dataset("model_weights/embed/table", data=np.zeros((3, 5), dtype=">i8"), chunks=(1, 5), compression="gzip")
        f.create_dataset("model_weights/vocab", data=np.array([b"ab", b"c"]))
        f["model_weights/alias"] = f["model_weights/dense/kernel"]
    with h5py.File(h5, "r") as f:
        datasets = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "/" + name not in datasets:
                numeric = obj.dtype.kind in "biuf"
                datasets["/" + name] = {
                    "shape": list(obj.shape),
                    "descr": obj.dtype.str,
                    "bytes": int(obj.dtype.itemsize * np.prod(obj.shape, dtype=np.int64)),
                    "numeric": numeric,
                }

        f.visititems(visit)
    answers["hdf5"] = {"attributes": ["keras_version", "model_config"], "datasets": datasets}

    print(json.dumps(answers))


if __name__ == "__main__":
    main(sys.argv[1])
