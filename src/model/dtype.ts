/**
 * Element types of safetensors checkpoints and the conversions between the 16-bit floats and float32.
 *
 * - bf16 is the top half of a float32: widening is exact (shift left by 16); narrowing rounds to nearest,
 *   ties to even, keeps infinities, and turns every NaN into a quiet NaN of the same sign (0x7fc0 / 0xffc0
 *   plus the top payload bits), never into an infinity.
 * - f16 (IEEE binary16): widening is exact (normals, subnormals, +-0, +-inf; a NaN widens to a NaN, without its
 *   sign or payload); narrowing from float32
 *   rounds to nearest, ties to even, in one step (no double rounding), with gradual underflow to the f16
 *   subnormals (smallest 2^-24), overflow to +-inf (anything >= 65520 in magnitude), and NaN kept quiet.
 *
 * All multi-byte values are little-endian, as the safetensors format requires. The bulk functions work on
 * byte arrays in that order whatever the host's endianness.
 */

/** Every dtype name the safetensors format defines (only F32, F16 and BF16 convert to float32 here). */
export const SAFETENSORS_DTYPES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;
/** The float dtypes that convert to and from Float32Array. */
export type FloatDtype = "F32" | "F16" | "BF16";

export function isSafetensorsDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === "string" && Object.hasOwn(SAFETENSORS_DTYPES, s);
}

export function isFloatDtype(s: unknown): s is FloatDtype {
  return s === "F32" || s === "F16" || s === "BF16";
}

/** Bytes per element of a dtype. */
export function dtypeSize(dtype: SafetensorsDtype): number {
  return SAFETENSORS_DTYPES[dtype];
}

// Scratch views for bit casts between a float32 and its 32 bits.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The 32 bits of `x` rounded to float32. */
export function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

/** The float32 whose bits are `bits` (as a JS number). */
export function f32FromBits(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0];
}

// ---------------------------------------------------------------------------------------------------------
// bf16

/** float32 bits -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32BitsToBf16(bits: number): number {
  bits >>>= 0;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) {
    return ((bits >>> 16) | 0x0040) & 0xffff;
  }
  const lsb = (bits >>> 16) & 1;
  // Adding 0x7fff + lsb and truncating rounds to nearest, ties to even; a carry out of the mantissa bumps the
  // exponent (the largest finite values round to infinity correctly).
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** A number -> bf16 bits (the number is first rounded to float32, as a float32 tensor would hold it). */
export function f32ToBf16(x: number): number {
  return f32BitsToBf16(f32Bits(x));
}

/** bf16 bits -> float32 value (exact). */
export function bf16ToF32(h: number): number {
  return f32FromBits((h & 0xffff) << 16);
}

// ---------------------------------------------------------------------------------------------------------
// f16

/** float32 bits -> f16 bits, round to nearest even, with subnormals, overflow to infinity, NaN kept. */
export function f32BitsToF16(bits: number): number {
  bits >>>= 0;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00;
    return sign | 0x7e00 | (mant >>> 13); // quiet NaN keeping the top payload bits
  }
  const e = exp - 127 + 15; // the f16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // f16 subnormal (or zero): the value is m * 2^(exp-150) with m = 1.mant (24 bits; float32 subnormals,
    // exp 0, are far below 2^-25 and round to zero). In units of 2^-24 it is m / 2^shift, shift = 126 - exp >= 14.
    if (exp === 0) return sign;
    const shift = 126 - exp;
    if (shift > 25) return sign; // below a quarter of the smallest subnormal
    const m = mant | 0x800000;
    let q = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) === 1)) q++;
    return sign | q; // q == 0x400 is the smallest normal, encoded correctly
  }
  let q = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (q & 1) === 1)) q++; // a carry may reach 0x7c00 = infinity, correctly
  return sign | q;
}

/** A number -> f16 bits (the number is first rounded to float32). */
export function f32ToF16(x: number): number {
  return f32BitsToF16(f32Bits(x));
}

/** f16 bits -> value (exact; returned as a JS number, which float32 represents exactly). */
export function f16ToF32(h: number): number {
  h &= 0xffff;
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

let f16Table: Float32Array | undefined;
/** All 65536 f16 values as float32 (built once, 256 KiB). */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

// ---------------------------------------------------------------------------------------------------------
// Bulk conversions between little-endian bytes and Float32Array

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads `n` little-endian u16 values from `bytes` (any alignment). */
function readU16(bytes: Uint8Array, n: number): Uint16Array {
  if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  return out;
}

/**
 * Decodes little-endian bytes of a float tensor into a new Float32Array (`bytes.length` must be a multiple of
 * the element size). F32 is copied; F16 and BF16 are widened exactly.
 */
export function decodeFloats(bytes: Uint8Array, dtype: FloatDtype): Float32Array {
  const size = dtypeSize(dtype);
  if (bytes.length % size !== 0)
    throw new Error(`decodeFloats: ${bytes.length} bytes is not a whole number of ${dtype} values`);
  const n = bytes.length / size;
  if (dtype === "F32") {
    const out = new Float32Array(n);
    if (LITTLE_ENDIAN) {
      new Uint8Array(out.buffer).set(bytes);
    } else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
    }
    return out;
  }
  const u16 = readU16(bytes, n);
  const out = new Float32Array(n);
  if (dtype === "BF16") {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
  } else {
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[u16[i]];
  }
  return out;
}

/** Encodes a Float32Array as little-endian bytes of `dtype` (F16/BF16 round to nearest even). */
export function encodeFloats(data: Float32Array, dtype: FloatDtype): Uint8Array {
  const n = data.length;
  if (dtype === "F32") {
    const out = new Uint8Array(n * 4);
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, n * 4));
    } else {
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, data[i], true);
    }
    return out;
  }
  const bits = new Uint32Array(data.buffer, data.byteOffset, n);
  const u16 = new Uint16Array(n);
  if (dtype === "BF16") for (let i = 0; i < n; i++) u16[i] = f32BitsToBf16(bits[i]);
  else for (let i = 0; i < n; i++) u16[i] = f32BitsToF16(bits[i]);
  if (LITTLE_ENDIAN) return new Uint8Array(u16.buffer);
  const out = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) {
    out[2 * i] = u16[i] & 0xff;
    out[2 * i + 1] = u16[i] >>> 8;
  }
  return out;
}
