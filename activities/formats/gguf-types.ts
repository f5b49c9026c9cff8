/**
 * ggml tensor types as GGUF files name them: id, name, elements per block and bytes per block, the values of ggml's
 * `ggml_type_traits` (each block size is the `sizeof(block_…)` that ggml-common.h asserts). The scanner and the cost
 * footprint both size tensors from this one table, so they cannot disagree about a file.
 */

export interface GgmlType {
  readonly id: number;
  readonly name: string;
  /** Elements stored in one block (1 for plain scalar types). */
  readonly blockSize: number;
  readonly bytesPerBlock: number;
}

/** QK_K, the super-block of the K-quants and most IQ types. */
const QK_K = 256;
/** ggml_half */
const HALF = 2;

// [id, name, elements per block, bytes per block]; the byte counts are written as ggml-common.h's size asserts so a
// reader can check each one against the struct.
const TYPES: readonly (readonly [number, string, number, number])[] = [
  [0, 'F32', 1, 4],
  [1, 'F16', 1, 2],
  [2, 'Q4_0', 32, HALF + 32 / 2],
  [3, 'Q4_1', 32, 2 * HALF + 32 / 2],
  // 4 and 5 (Q4_2, Q4_3) were removed from ggml; files carrying them are not readable by any current runtime.
  [6, 'Q5_0', 32, HALF + 4 + 32 / 2],
  [7, 'Q5_1', 32, 2 * HALF + 4 + 32 / 2],
  [8, 'Q8_0', 32, HALF + 32],
  // block_q8_1 holds d and s as ggml_half (36 bytes); gguf-py still lists the older float layout (40).
  [9, 'Q8_1', 32, 2 * HALF + 32],
  [10, 'Q2_K', QK_K, 2 * HALF + QK_K / 16 + QK_K / 4],
  [11, 'Q3_K', QK_K, HALF + QK_K / 4 + QK_K / 8 + 12],
  [12, 'Q4_K', QK_K, 2 * HALF + 12 + QK_K / 2],
  [13, 'Q5_K', QK_K, 2 * HALF + 12 + QK_K / 8 + QK_K / 2],
  [14, 'Q6_K', QK_K, HALF + QK_K / 16 + (3 * QK_K) / 4],
  [15, 'Q8_K', QK_K, 4 + QK_K + (QK_K / 16) * 2],
  [16, 'IQ2_XXS', QK_K, HALF + (QK_K / 8) * 2],
  [17, 'IQ2_XS', QK_K, HALF + (QK_K / 8) * 2 + QK_K / 32],
  [18, 'IQ3_XXS', QK_K, HALF + (3 * QK_K) / 8],
  [19, 'IQ1_S', QK_K, HALF + QK_K / 8 + QK_K / 16],
  [20, 'IQ4_NL', 32, HALF + 32 / 2],
  [21, 'IQ3_S', QK_K, HALF + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64],
  [22, 'IQ2_S', QK_K, HALF + QK_K / 4 + QK_K / 32 + QK_K / 32],
  [23, 'IQ4_XS', QK_K, HALF + 2 + QK_K / 64 + QK_K / 2],
  [24, 'I8', 1, 1],
  [25, 'I16', 1, 2],
  [26, 'I32', 1, 4],
  [27, 'I64', 1, 8],
  [28, 'F64', 1, 8],
  [29, 'IQ1_M', QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  [30, 'BF16', 1, 2],
  // 31-33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36-38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) were repacked runtime
  // layouts; ggml no longer reads them from GGUF files.
  [34, 'TQ1_0', QK_K, HALF + QK_K / 64 + (QK_K - (4 * QK_K) / 64) / 5],
  [35, 'TQ2_0', QK_K, HALF + QK_K / 4],
  [39, 'MXFP4', 32, 1 + 32 / 2],
  [40, 'NVFP4', 64, 64 / 16 + 64 / 2],
  [41, 'Q1_0', 128, HALF + 128 / 8],
];

/** Every ggml type a GGUF file may carry, by id. */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  TYPES.map(([id, name, blockSize, bytesPerBlock]) => [id, Object.freeze({ id, name, blockSize, bytesPerBlock })]),
);

export function ggmlType(id: number): GgmlType | undefined {
  return GGML_TYPES.get(id);
}
