"""Writes small weight files with the reference libraries (safetensors, gguf) and prints what those libraries read
back from them as JSON: the known answers the cost gate's header readers are checked against.

usage: make-weights.py safetensors <out> | gguf <out>
"""
import json
import sys

import numpy as np


def safetensors_file(out):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    tensors = {
        "embed.weight": np.zeros((1000, 64), dtype=np.float16),
        "dense.weight": np.zeros((64, 32), dtype=np.float32),
        "dense.bias": np.zeros((32,), dtype=np.float32),
        "steps": np.zeros((3,), dtype=np.int64),
    }
    save_file(tensors, out, metadata={"format": "np"})
    params, nbytes, by_dtype = 0, 0, {}
    with safe_open(out, framework="np") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            key = {"float16": "F16", "float32": "F32", "int64": "I64"}[str(t.dtype)]
            d = by_dtype.setdefault(key, {"parameters": 0, "bytes": 0})
            d["parameters"] += int(t.size)
            d["bytes"] += int(t.nbytes)
            params += int(t.size)
            nbytes += int(t.nbytes)
    return {"parameters": params, "bytes": nbytes, "byDtype": by_dtype}


def gguf_file(out):
    import gguf
    from gguf.quants import quantize

    w = gguf.GGUFWriter(out, "llama")
    w.add_block_count(2)
    w.add_context_length(512)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(300)])
    rng = np.random.default_rng(7)
    w.add_tensor("token_embd.weight", rng.standard_normal((300, 64)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones((64,), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((64, 64)).astype(np.float16))
    q8 = quantize(rng.standard_normal((128, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    q4 = quantize(rng.standard_normal((64, 128)).astype(np.float32), gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("blk.1.ffn_down.weight", q4, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = gguf.GGUFReader(out)
    params, nbytes, by_dtype = 0, 0, {}
    for t in r.tensors:
        d = by_dtype.setdefault(t.tensor_type.name, {"parameters": 0, "bytes": 0})
        d["parameters"] += int(t.n_elements)
        d["bytes"] += int(t.n_bytes)
        params += int(t.n_elements)
        nbytes += int(t.n_bytes)
    return {"parameters": params, "bytes": nbytes, "byDtype": by_dtype}


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    print(json.dumps({"safetensors": safetensors_file, "gguf": gguf_file}[kind](out)))
