"""The fuzzing drill's second opinion: does each file parse with the format's reference reader?

Usage: reference-check.py <format> <file>...; prints one JSON object {file: null (parses) or "why not"}.
The drill asks only about inputs the scanner reported clean: a clean report on a file the reference reader rejects
means the scanner missed damage it should have reported (fail open). Nothing here loads or runs a pickle.
"""

import gzip
import io
import json
import pickletools
import re
import sys
import tarfile
import zipfile


def check_pickle(path: str) -> None:
    with open(path, "rb") as f:
        check_pickle_bytes(f.read())


def check_pickle_bytes(data: bytes) -> None:
    """Walks the opcodes to STOP. A value pickle cannot decode (bad UTF-8, a malformed number) stops pickle.load
    at that opcode, after its bytes were read: the stream stays in step and nothing after it runs, so it is no
    structural damage. Unknown opcodes, lengths past the end and a missing STOP are."""
    f = io.BytesIO(data)
    while True:
        code = f.read(1)
        if not code:
            raise ValueError("pickle exhausted before seeing STOP")
        op = pickletools.code2op.get(code.decode("latin-1"))
        if op is None:
            raise ValueError(f"opcode {code!r} unknown at {f.tell() - 1}")
        if op.arg is not None:
            try:
                op.arg.reader(f)
            except UnicodeDecodeError:
                pass
            except ValueError as err:
                if "invalid literal" not in str(err) and "could not convert" not in str(err):
                    raise
        if op.name == "STOP":
            return


def check_safetensors(path: str) -> None:
    from safetensors import safe_open

    with safe_open(path, "np") as f:
        for key in f.keys():
            f.get_slice(key).get_shape()


def check_npy(path: str) -> None:
    from numpy.lib import _format_impl as npy_format

    with open(path, "rb") as f:
        version = npy_format.read_magic(f)
        shape, _, dtype = npy_format._read_array_header(f, version, max_header_size=1 << 20)
        if dtype.hasobject:
            check_pickle_bytes(f.read())
            return
        if dtype.names is not None:
            # Structured arrays without objects are plain bytes: the scanner checks their header, not their length.
            return
        start = f.tell()
        f.seek(0, 2)
        count = 1
        for d in shape:
            count *= d
        if f.tell() - start != count * dtype.itemsize:
            raise ValueError("data size does not match the header")


def check_gguf(path: str) -> None:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except UnicodeDecodeError:
        # llama.cpp keeps strings as bytes: an invalid UTF-8 key or value is no structural damage.
        return
    for tensor in reader.tensors:
        tensor.data.shape  # noqa: B018 (touching the view checks its bounds)


TORCH_STORAGE = re.compile(r"^(?:[^/]+/)?data/\d+$")


def check_zip(path: str) -> None:
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        # zipfile also checks the directory's declared size against its offset; yauzl, like torch's reader, goes
        # by the offset alone, so both read the same entries.
        if "Bad offset for central directory" not in str(err):
            raise
        return
    with z:
        for info in z.infolist():
            # Raw tensor storages are never unpickled: the scanner skips them, and so does this check.
            if not TORCH_STORAGE.match(info.filename):
                try:
                    z.read(info)
                except zipfile.BadZipFile as err:
                    # The scanner examined the bytes that are there; a checksum mismatch only makes loaders refuse.
                    if "Bad CRC-32" not in str(err):
                        raise


def check_tar(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
        if data[257:262] != b"ustar":
            check_pickle_bytes(data)
            return
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for member in t:
            if member.isfile():
                f = t.extractfile(member)
                if f is not None:
                    f.read()


CHECKS = {
    "pickle": check_pickle,
    "safetensors": check_safetensors,
    "npy": check_npy,
    "gguf": check_gguf,
    "zip": check_zip,
    "tar": check_tar,
}


def main() -> None:
    check = CHECKS[sys.argv[1]]
    result = {}
    for path in sys.argv[2:]:
        try:
            check(path)
            result[path] = None
        except Exception as err:  # noqa: BLE001 (any failure is the answer)
            result[path] = f"{type(err).__name__}: {err}"[:300]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
