/**
 * The element types of tensor formats, with their width in bits, and what each format calls them. Safetensors, npy,
 * ONNX and TF.js readers all size tensors from this one table, so the scanner and the cost footprint cannot disagree
 * about how many bytes a tensor takes. (GGUF's block-quantized types are in gguf-types.ts.)
 */

/** Bits per element of every fixed-width element type a supported format can hold. */
export const DTYPE_BITS = {
  bool: 8,
  u8: 8,
  i8: 8,
  u16: 16,
  i16: 16,
  u32: 32,
  i32: 32,
  u64: 64,
  i64: 64,
  f16: 16,
  bf16: 16,
  f32: 32,
  f64: 64,
  c64: 64,
  c128: 128,
  f8_e4m3: 8,
  f8_e4m3fnuz: 8,
  f8_e5m2: 8,
  f8_e5m2fnuz: 8,
  f8_e8m0: 8,
  f6_e2m3: 6,
  f6_e3m2: 6,
  f4: 4,
  i4: 4,
  u4: 4,
} as const satisfies Record<string, number>;

export type Dtype = keyof typeof DTYPE_BITS;

export function dtypeBits(dtype: Dtype): number {
  return DTYPE_BITS[dtype];
}

/** Safetensors dtype names (the `dtype` of a header entry). */
export const SAFETENSORS_DTYPES: Readonly<Record<string, Dtype>> = {
  BOOL: 'bool',
  U8: 'u8',
  I8: 'i8',
  F8_E5M2: 'f8_e5m2',
  F8_E4M3: 'f8_e4m3',
  F8_E8M0: 'f8_e8m0',
  I16: 'i16',
  U16: 'u16',
  F16: 'f16',
  BF16: 'bf16',
  I32: 'i32',
  U32: 'u32',
  F32: 'f32',
  I64: 'i64',
  U64: 'u64',
  F64: 'f64',
  C64: 'c64',
  F4: 'f4',
  F6_E2M3: 'f6_e2m3',
  F6_E3M2: 'f6_e3m2',
};

/** ONNX TensorProto.DataType ids; 8 (STRING) has no fixed width and is not listed. */
export const ONNX_DTYPES: Readonly<Record<number, Dtype>> = {
  1: 'f32',
  2: 'u8',
  3: 'i8',
  4: 'u16',
  5: 'i16',
  6: 'i32',
  7: 'i64',
  9: 'bool',
  10: 'f16',
  11: 'f64',
  12: 'u32',
  13: 'u64',
  14: 'c64',
  15: 'c128',
  16: 'bf16',
  17: 'f8_e4m3',
  18: 'f8_e4m3fnuz',
  19: 'f8_e5m2',
  20: 'f8_e5m2fnuz',
  21: 'u4',
  22: 'i4',
  23: 'f4',
  24: 'f8_e8m0',
};

/** TF.js weight dtypes; `string` weights have no fixed width. */
export const TFJS_DTYPES: Readonly<Record<string, Dtype>> = {
  float32: 'f32',
  int32: 'i32',
  bool: 'bool',
  complex64: 'c64',
};

/** TF.js quantized storage dtypes (`quantization.dtype`): weights stored narrow and dequantized to float32. */
export const TFJS_QUANTIZED_DTYPES: Readonly<Record<string, Dtype>> = { uint8: 'u8', uint16: 'u16', float16: 'f16' };

/** numpy type kinds by (kind, item bytes) for the fixed-width numeric ones. */
export const NPY_DTYPES: Readonly<Record<string, Dtype>> = {
  '?1': 'bool',
  b1: 'i8',
  i1: 'i8',
  i2: 'i16',
  i4: 'i32',
  i8: 'i64',
  u1: 'u8',
  u2: 'u16',
  u4: 'u32',
  u8: 'u64',
  f2: 'f16',
  f4: 'f32',
  f8: 'f64',
  c8: 'c64',
  c16: 'c128',
};

/** Bytes `elements` elements of `dtype` take packed, or undefined when sub-byte elements do not end on a byte. */
export function packedBytes(dtype: Dtype, elements: bigint): bigint | undefined {
  const bits = elements * BigInt(DTYPE_BITS[dtype]);
  return bits % 8n === 0n ? bits / 8n : undefined;
}
