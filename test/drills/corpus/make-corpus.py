"""Writes the seed corpus of the parser fuzzing drill (test/drills/fuzz-*.test.ts) next to this script.

Run once with the project venv (`.venv/bin/python test/drills/corpus/make-corpus.py`) and commit what it writes:
small, valid files of every format the gates parse. The mutators start from these bytes; regression seeds (inputs
that once crashed a parser) are committed by hand beside them and are never rewritten here.
"""

import collections
import gzip
import io
import json
import os
import pickle
import shutil
import sys
import tarfile
import zipfile

import gguf
import h5py
import joblib
import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def out(fmt: str, name: str) -> str:
    os.makedirs(os.path.join(HERE, fmt), exist_ok=True)
    return os.path.join(HERE, fmt, name)


def write(fmt: str, name: str, data: bytes) -> None:
    with open(out(fmt, name), "wb") as f:
        f.write(data)


def state() -> collections.OrderedDict:
    return collections.OrderedDict(
        [("layer.weight", [0.5, -1.25, 3.0]), ("layer.bias", (1, 2, 3)), ("name", "tiny"), ("blob", b"\x00\x01")]
    )


def pickles() -> None:
    write("pickle", "ordered-dict-p2.pkl", pickle.dumps(state(), protocol=2))
    write("pickle", "ordered-dict-p4.pkl", pickle.dumps(state(), protocol=4))
    write("pickle", "ordered-dict-p0.pkl", pickle.dumps(state(), protocol=0))
    # What the scanner exists for: REDUCE of a shell call (the payload only echoes).
    write("pickle", "reduce-os-system.pkl", b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.")
    buf = io.BytesIO()
    joblib.dump({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, buf)
    write("pickle", "joblib-array.pkl", buf.getvalue())


def safetensors_seeds() -> None:
    tensors = {
        "a": np.arange(16, dtype=np.float32).reshape(4, 4),
        "b": np.arange(8, dtype=np.int8),
        "c": np.zeros((2, 3), dtype=np.float16),
    }
    save_file(tensors, out("safetensors", "three-tensors.safetensors"), metadata={"format": "np"})


def gguf_seeds() -> None:
    path = out("gguf", "tiny-llama.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_block_count(2)
    w.add_embedding_length(8)
    w.add_head_count(2)
    w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"])
    w.add_array("tokenizer.ggml.scores", [0.0, 0.0, -1.0, -2.0])
    w.add_tensor("tok_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def npy_seeds() -> None:
    np.save(out("npy", "float32.npy"), np.arange(12, dtype=np.float32).reshape(3, 4))
    np.save(out("npy", "structured.npy"), np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]))
    np.save(out("npy", "object.npy"), np.array([{"a": 1}, [1, 2]], dtype=object), allow_pickle=True)
    with open(out("npy", "float64-v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.ones((2, 2)), version=(2, 0))


def zip_seeds() -> None:
    np.savez(out("zip", "arrays.npz"), a=np.arange(6, dtype=np.int32), b=np.ones((2, 2)))
    np.savez_compressed(out("zip", "compressed.npz"), a=np.zeros(64, dtype=np.float32))
    # The layout torch.save writes: a pickle, raw storages and metadata records, stored uncompressed.
    with zipfile.ZipFile(out("zip", "torch-layout.pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(state(), protocol=2))
        z.writestr("archive/data/0", np.arange(4, dtype=np.float32).tobytes())
        z.writestr("archive/version", "3\n")
        z.writestr("archive/byteorder", "little")
    with zipfile.ZipFile(out("zip", "keras-v3.keras"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        z.writestr("config.json", json.dumps(keras_config(False)))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))


def tar_seeds() -> None:
    with tarfile.open(out("tar", "legacy-torch.tar"), "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in [
            ("sys_info", pickle.dumps({"little_endian": True}, protocol=2)),
            ("pickle", pickle.dumps(state(), protocol=2)),
            # No storages: the count, as torch's legacy writer pickles it.
            ("storages", pickle.dumps(0, protocol=2)),
            ("tensors", pickle.dumps(0, protocol=2)),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        data = pickle.dumps(state(), protocol=4)
        info = tarfile.TarInfo("model/weights.pkl")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    write("tar", "model.tar.gz", gzip.compress(buf.getvalue(), mtime=0))
    write("tar", "weights.pkl.gz", gzip.compress(pickle.dumps(state(), protocol=2), mtime=0))


def keras_config(with_lambda: bool) -> dict:
    layers = [{"class_name": "Dense", "config": {"name": "dense", "units": 4}, "module": "keras.layers"}]
    if with_lambda:
        layers.append({"class_name": "Lambda", "config": {"name": "lam", "function": "4wEAAAAAAAAA"}})
    return {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}}


def hdf5_seeds() -> None:
    for name, with_lambda in [("dense.h5", False), ("lambda.h5", True)]:
        with h5py.File(out("hdf5", name), "w", libver="earliest") as f:
            f.attrs["model_config"] = json.dumps(keras_config(with_lambda))
            f.attrs["keras_version"] = "2.15.0"
            f.create_dataset("model_weights/dense/kernel", data=np.arange(8, dtype=np.float32).reshape(2, 4))


def text_seeds() -> None:
    rows = ["age,income,group,label"]
    for i in range(40):
        rows.append(f"{20 + i},{1000 + 37 * i},{'ab'[i % 2]},{i % 3 == 0 and 1 or 0}")
    write("csv", "credit.csv", ("\n".join(rows) + "\n").encode())
    write("csv", "quoted.csv", b'"age","note","label"\r\n31,"says ""hi"", twice",1\r\n42,"multi\nline",0\r\n')
    shutil.copyfile(os.path.join(REPO, "config", "approvers.yaml"), out("yaml", "approvers.yaml"))
    shutil.copyfile(os.path.join(REPO, "config", "policies", "default.yaml"), out("yaml", "policy-default.yaml"))
    shutil.copyfile(
        os.path.join(REPO, "examples", "releases", "credit-risk-production.yaml"), out("yaml", "request.yaml")
    )


def main() -> None:
    np.random.seed(0)
    pickles()
    safetensors_seeds()
    gguf_seeds()
    npy_seeds()
    zip_seeds()
    tar_seeds()
    hdf5_seeds()
    text_seeds()
    total = 0
    for root, _, files in os.walk(HERE):
        for name in files:
            size = os.path.getsize(os.path.join(root, name))
            total += size
            if size > 64 * 1024 and not name.endswith(".py"):
                sys.exit(f"{name}: {size} bytes, over the 64 KiB seed limit")
    print(f"corpus: {total} bytes")


if __name__ == "__main__":
    main()
