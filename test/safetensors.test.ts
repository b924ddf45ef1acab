import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import {
  bf16ToF32,
  decodeFloats,
  encodeFloats,
  f16ToF32,
  f32Bits,
  f32BitsToBf16,
  f32BitsToF16,
  f32FromBits,
  f32ToBf16,
  f32ToF16,
} from "../src/model/dtype.js";
import {
  INDEX_FILE,
  SafetensorsCheckpoint,
  SafetensorsFile,
  SafetensorsWriter,
  readCheckpoint,
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsIndex,
  readTensor,
  readTensorBytes,
  writeSafetensors,
  writeSafetensorsIndex,
  type TensorInput,
} from "../src/model/safetensors.js";
import { tempDir } from "./helpers/tmp.js";
import { xorshiftWords } from "./helpers/xorshift.js";

const tmp = tempDir("memento-st-");
let counter = 0;
const tmpFile = (name = "t.safetensors"): string => join(tmp, `${counter++}-${name}`);

// ------------------------------------------------------------------------------------------------------------
// Reference rounding: choose the nearest representable value by exact float64 arithmetic, ties to the even
// encoding. Independent of the bit tricks in src/model/dtype.ts.

/** All non-negative finite f16 values (encodings 0..0x7bff are increasing), plus 65536 as the overflow step. */
const F16_POS: number[] = [];
for (let h = 0; h <= 0x7bff; h++) {
  const e = h >> 10;
  const m = h & 0x3ff;
  F16_POS.push(e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

function refF16(x: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  // Binary search: largest encoding with value <= a.
  let lo = 0;
  let hi = F16_POS.length - 1;
  if (a >= 65504) {
    // Between 65504 (odd encoding 0x7bff) and the next step 65536 (which would be 0x7c00, even): the tie and
    // anything above it round to infinity.
    return sign | (a - 65504 < 16 ? 0x7bff : 0x7c00);
  }
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (F16_POS[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = F16_POS[lo];
  const above = F16_POS[lo + 1];
  const dBelow = a - below;
  const dAbove = above - a;
  let h = lo;
  if (dAbove < dBelow || (dAbove === dBelow && (lo & 1) === 1)) h = lo + 1;
  return sign | h;
}

function refBf16(bits: number): number {
  const x = f32FromBits(bits);
  if (Number.isNaN(x)) return -1;
  const lowBits = bits & 0xffff0000;
  const low = f32FromBits(lowBits); // truncation toward zero
  const hiH = ((lowBits >>> 16) + 1) & 0xffff; // next encoding away from zero
  const high = (hiH & 0x7fff) === 0x7f80 ? Math.sign(x) * 2 ** 128 : f32FromBits(hiH << 16);
  const dLow = Math.abs(x - low);
  const dHigh = Math.abs(high - x);
  const lowH = lowBits >>> 16;
  if (dHigh < dLow || (dHigh === dLow && (lowH & 1) === 1)) return hiH;
  return lowH;
}

describe("dtype: bf16", () => {
  it("every bf16 value widens exactly and narrows back to itself (NaN stays NaN)", () => {
    for (let h = 0; h < 65536; h++) {
      const x = bf16ToF32(h);
      const back = f32ToBf16(x);
      if (Number.isNaN(x)) {
        expect(Number.isNaN(bf16ToF32(back))).toBe(true);
        expect(back & 0x8000).toBe(h & 0x8000);
      } else if (back !== h) {
        throw new Error(`bf16 ${h.toString(16)} -> ${x} -> ${back.toString(16)}`);
      }
    }
  });

  it("narrowing rounds to nearest, ties to even (300k random float32 bit patterns)", () => {
    const next = xorshiftWords(12345);
    for (let i = 0; i < 300_000; i++) {
      let bits = next();
      // Half of them exactly on a tie (low 16 bits 0x8000) to exercise ties-to-even.
      if (i % 2 === 0) bits = ((bits & 0xffff0000) | 0x8000) >>> 0;
      const want = refBf16(bits);
      const got = f32BitsToBf16(bits);
      if (want === -1) {
        if ((got & 0x7f80) !== 0x7f80 || (got & 0x7f) === 0)
          throw new Error(`NaN ${bits.toString(16)} -> ${got.toString(16)}`);
      } else if (got !== want) {
        throw new Error(`bits ${bits.toString(16)}: got ${got.toString(16)}, want ${want.toString(16)}`);
      }
    }
  });

  it("edge cases", () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(f32ToBf16(-0)).toBe(0x8000);
    expect(f32ToBf16(Infinity)).toBe(0x7f80);
    expect(f32ToBf16(-Infinity)).toBe(0xff80);
    expect(f32ToBf16(NaN)).toBe(0x7fc0);
    expect(f32BitsToBf16(0x7f800001)).toBe(0x7fc0); // signalling NaN with a low payload stays NaN, not inf
    expect(f32BitsToBf16(0xff800001)).toBe(0xffc0);
    expect(f32BitsToBf16(0x7f7fffff)).toBe(0x7f80); // float32 max rounds up to infinity
    expect(f32BitsToBf16(0x00000001)).toBe(0x0000); // float32 subnormal
    expect(f32BitsToBf16(0x00008000)).toBe(0x0000); // tie -> even
    expect(f32BitsToBf16(0x00018000)).toBe(0x0002);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc000)).toBe(-2);
    expect(bf16ToF32(0x0001)).toBe(2 ** -133);
  });
});

describe("dtype: f16", () => {
  it("every f16 value widens exactly and narrows back to itself (NaN stays NaN)", () => {
    for (let h = 0; h < 65536; h++) {
      const x = f16ToF32(h);
      const back = f32ToF16(x);
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
        expect(Number.isNaN(x)).toBe(true);
        expect((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0).toBe(true); // NaN's sign and payload are not kept
      } else if (back !== h) {
        throw new Error(`f16 ${h.toString(16)} -> ${x} -> ${back.toString(16)}`);
      }
      if (h < 0x7c00 && h > 0) expect(x).toBe(F16_POS[h]);
    }
  });

  it("narrowing rounds to nearest, ties to even, with subnormals and overflow (400k random float32 values)", () => {
    const next = xorshiftWords(777);
    for (let i = 0; i < 400_000; i++) {
      let bits = next();
      // Focus on the f16 range: float32 exponents 95..150 (2^-32 .. 2^23), including the subnormal band.
      const exp = 95 + (next() % 56);
      bits = ((bits & 0x807fffff) | (exp << 23)) >>> 0;
      if (i % 3 === 0) bits = ((bits & 0xffffe000) | 0x1000) >>> 0; // normal-range ties
      const x = f32FromBits(bits);
      const want = refF16(x);
      const got = f32BitsToF16(bits);
      if (got !== want)
        throw new Error(`x ${x} (bits ${bits.toString(16)}): got ${got.toString(16)}, want ${want.toString(16)}`);
    }
    // Every f16 midpoint (exactly representable in float32) and its neighbours.
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (F16_POS[h] + F16_POS[h + 1]) / 2;
      for (const x of [mid, f32FromBits(f32Bits(mid) - 1), f32FromBits(f32Bits(mid) + 1)]) {
        if (x === 0) continue;
        const got = f32ToF16(x);
        const want = refF16(x);
        if (got !== want) throw new Error(`x ${x}: got ${got.toString(16)}, want ${want.toString(16)}`);
        expect(f32ToF16(-x)).toBe(want | 0x8000);
      }
    }
  });

  it("edge cases", () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65519.99)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // tie with the (odd) max -> infinity
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(-1e6)).toBe(0xfc00);
    expect(f32ToF16(2 ** -14)).toBe(0x0400); // smallest normal
    expect(f32ToF16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie -> even (0)
    expect(f32ToF16(2 ** -25 * (1 + 2 ** -23))).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // tie 1.5 ulp -> 2
    expect(f32ToF16(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400); // rounds up into the normals
    expect(f32ToF16(1e-10)).toBe(0);
    expect(f32ToF16(-1e-10)).toBe(0x8000);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
    const nan = f32ToF16(NaN);
    expect((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0).toBe(true);
    expect(f32BitsToF16(0x7f800001) & 0x3ff).not.toBe(0); // low-payload NaN is not turned into infinity
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0xc000)).toBe(-2);
  });
});

describe("dtype: bulk encode/decode", () => {
  it("round-trips little-endian bytes for every float dtype, also from unaligned views", () => {
    const data = new Float32Array([0, -0, 1, -2.5, 3.140625, 65504, 1e-5, -1e-7, Infinity, -Infinity, 0.1]);
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const bytes = encodeFloats(data, dtype);
      expect(bytes.length).toBe(data.length * (dtype === "F32" ? 4 : 2));
      const shifted = new Uint8Array(bytes.length + 1).subarray(1);
      shifted.set(bytes);
      const a = decodeFloats(bytes, dtype);
      const b = decodeFloats(shifted, dtype);
      expect([...b]).toEqual([...a]);
      for (let i = 0; i < data.length; i++) {
        const want =
          dtype === "F32" ? data[i] : dtype === "F16" ? f16ToF32(f32ToF16(data[i])) : bf16ToF32(f32ToBf16(data[i]));
        expect(Object.is(a[i], Math.fround(want))).toBe(true);
      }
    }
    // Explicit byte order: 1.0 as F16 is 0x3c00 -> bytes 00 3c; as BF16 0x3f80 -> 80 3f; as F32 -> 00 00 80 3f.
    expect([...encodeFloats(new Float32Array([1]), "F16")]).toEqual([0x00, 0x3c]);
    expect([...encodeFloats(new Float32Array([1]), "BF16")]).toEqual([0x80, 0x3f]);
    expect([...encodeFloats(new Float32Array([1]), "F32")]).toEqual([0x00, 0x00, 0x80, 0x3f]);
  });
});

// ------------------------------------------------------------------------------------------------------------
// The file format

/** Builds a safetensors file by hand from the spec (independent of the writer). */
function handBuilt(
  entries: { name: string; dtype: string; shape: number[]; bytes: number[] }[],
  meta?: Record<string, string>,
  pad = true,
): Buffer {
  const header: Record<string, unknown> = {};
  if (meta) header.__metadata__ = meta;
  let at = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + e.bytes.length] };
    at += e.bytes.length;
  }
  let json = JSON.stringify(header);
  if (pad) while (json.length % 8 !== 0) json += " ";
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), Buffer.from(entries.flatMap((e) => e.bytes))]);
}

describe("safetensors: reading", () => {
  it("reads a hand-built file: header, dtypes, shapes, values, metadata", () => {
    const p = tmpFile();
    writeFileSync(
      p,
      handBuilt(
        [
          { name: "a", dtype: "F32", shape: [2], bytes: [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0] }, // 1, -2
          { name: "b", dtype: "F16", shape: [1, 2], bytes: [0x00, 0x3c, 0x00, 0xb8] }, // 1, -0.5
          { name: "c", dtype: "BF16", shape: [], bytes: [0x40, 0x40] }, // 3
          { name: "d", dtype: "I64", shape: [1], bytes: [7, 0, 0, 0, 0, 0, 0, 0] },
        ],
        { format: "pt" },
        false, // unpadded headers are valid too
      ),
    );
    const h = readSafetensorsHeader(p);
    expect([...h.tensors.keys()]).toEqual(["a", "b", "c", "d"]);
    expect(h.metadata).toEqual({ format: "pt" });
    expect(h.tensors.get("b")).toEqual({ dtype: "F16", shape: [1, 2], dataOffsets: [8, 12] });
    expect(() => readSafetensors(p)).toThrow(/I64/); // non-float tensors do not convert
    expect([...readTensor(p, "a").data]).toEqual([1, -2]);
    expect(readTensor(p, "b")).toEqual({ dtype: "F16", shape: [1, 2], data: new Float32Array([1, -0.5]) });
    expect([...readTensor(p, "c").data]).toEqual([3]);
    expect([...readTensorBytes(p, "d").bytes]).toEqual([7, 0, 0, 0, 0, 0, 0, 0]);
    const f = SafetensorsFile.open(p);
    try {
      expect([...f.readElements("a", 1, 1)]).toEqual([-2]);
      expect([...f.readRow("b", 0)]).toEqual([1, -0.5]);
      expect([...f.readBytes("a", 4, 8)]).toEqual([0, 0, 0, 0xc0]);
      expect(() => f.read("nope")).toThrow(UserError);
    } finally {
      f.close();
    }
  });

  const bad: [string, () => Buffer, RegExp][] = [
    ["too short", () => Buffer.from([1, 2, 3]), /only 3 bytes/],
    [
      "header length past the end",
      () => Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), Buffer.from("{}")]),
      /exceeds the file size/,
    ],
    ["absurd header length", () => Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0]), /too large/],
    ["not JSON", () => Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{nope!!}")]), /not JSON/],
    [
      "not starting with {",
      () => Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("[]")]),
      /start with/,
    ],
    [
      "offsets do not match the shape",
      () => {
        const b = handBuilt([{ name: "a", dtype: "F32", shape: [3], bytes: [0, 0, 0, 0, 0, 0, 0, 0] }]);
        return b;
      },
      /do not match/,
    ],
    [
      "trailing bytes",
      () =>
        Buffer.concat([handBuilt([{ name: "a", dtype: "F32", shape: [1], bytes: [0, 0, 0, 0] }]), Buffer.from([1, 2])]),
      /byte buffer has 6/,
    ],
    [
      "unknown dtype",
      () => handBuilt([{ name: "a", dtype: "F128", shape: [1], bytes: [0, 0, 0, 0] }]),
      /unknown dtype/,
    ],
  ];
  for (const [what, make, re] of bad) {
    it(`rejects a malformed file: ${what}`, () => {
      const p = tmpFile();
      writeFileSync(p, make());
      expect(() => readSafetensorsHeader(p)).toThrow(UserError);
      expect(() => readSafetensorsHeader(p)).toThrow(re);
    });
  }

  it("rejects holes and overlaps", () => {
    const mk = (offs: [number, number][]): Buffer => {
      const header: Record<string, unknown> = {};
      offs.forEach((o, i) => {
        header[`t${i}`] = { dtype: "U8", shape: [o[1] - o[0]], data_offsets: o };
      });
      const json = JSON.stringify(header);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([len, Buffer.from(json), Buffer.alloc(8)]);
    };
    const hole = tmpFile();
    writeFileSync(
      hole,
      mk([
        [0, 2],
        [4, 8],
      ]),
    );
    expect(() => readSafetensorsHeader(hole)).toThrow(/hole or overlap/);
    const overlap = tmpFile();
    writeFileSync(
      overlap,
      mk([
        [0, 6],
        [4, 8],
      ]),
    );
    expect(() => readSafetensorsHeader(overlap)).toThrow(/hole or overlap/);
    const ok = tmpFile();
    writeFileSync(
      ok,
      mk([
        [4, 8],
        [0, 4],
      ]),
    ); // any order is fine when the buffer is covered exactly
    expect(readSafetensorsHeader(ok).tensors.size).toBe(2);
  });

  it("a missing file is a UserError", () => {
    expect(() => readSafetensorsHeader(join(tmp, "missing.safetensors"))).toThrow(UserError);
  });
});

describe("safetensors: writing", () => {
  it("round-trips F32/F16/BF16, scalars and empty tensors with metadata; header padded to 8 with spaces; aligned layout", () => {
    const p = tmpFile();
    const rnd = xorshiftWords(5);
    const vals = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rnd() / 2 ** 32 - 0.5) * 8);
    const tensors = new Map<string, TensorInput>([
      ["z.bf16", { shape: [3, 5], data: vals(15), dtype: "BF16" }],
      ["a.f16", { shape: [7], data: vals(7), dtype: "F16" }],
      ["m.f32", { shape: [2, 3], data: vals(6) }],
      ["scalar", { shape: [], data: new Float32Array([42]), dtype: "F32" }],
      ["empty", { shape: [0, 4], data: new Float32Array(0), dtype: "BF16" }],
    ]);
    writeSafetensors(p, tensors, { format: "pt", note: "héllo" });
    const raw = readFileSync(p);
    const n = Number(raw.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const headerText = raw.subarray(8, 8 + n).toString("utf8");
    expect(headerText.startsWith("{")).toBe(true);
    expect(/^[^ ]*\}( *)$/.test(headerText.replace(/"[^"]*"/g, '""'))).toBe(true);
    const h = readSafetensorsHeader(p);
    expect(h.metadata).toEqual({ format: "pt", note: "héllo" });
    // Layout: element size descending, then name; every tensor aligned to its element size.
    expect([...h.tensors.keys()]).toEqual(["m.f32", "scalar", "a.f16", "empty", "z.bf16"]);
    for (const t of h.tensors.values()) expect((h.dataStart + t.dataOffsets[0]) % (t.dtype === "F32" ? 4 : 2)).toBe(0);
    const back = readSafetensors(p);
    for (const [name, t] of tensors) {
      const r = back.get(name)!;
      expect(r.shape).toEqual(t.shape);
      expect(r.dtype).toBe(t.dtype ?? "F32");
      const want = Float32Array.from(t.data, (x) =>
        t.dtype === "F16" ? f16ToF32(f32ToF16(x)) : t.dtype === "BF16" ? bf16ToF32(f32ToBf16(x)) : x,
      );
      expect([...r.data]).toEqual([...want]);
    }
  });

  it("streams: header plan first, tensors in any order and in parts; incomplete writers fail and leave no file", () => {
    const p = tmpFile();
    const w = new SafetensorsWriter(p, [
      { name: "big", dtype: "BF16", shape: [4, 3] },
      { name: "ids", dtype: "I32", shape: [2] },
    ]);
    expect(existsSync(p)).toBe(false); // written to p.partial until close()
    w.write("ids", new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0]));
    w.writePart("big", new Float32Array([0, 1, 2, 3, 4, 5]));
    w.writePart("big", encodeFloats(new Float32Array([6, 7, 8]), "BF16"));
    expect(w.pending()).toEqual(["big"]);
    expect(() => w.writePart("big", new Float32Array([9, 10, 11, 12]))).toThrow(/exceeds/);
    expect(() => w.write("ids", new Uint8Array(8))).toThrow(/already/);
    expect(() => w.writePart("ids", new Float32Array(1))).toThrow(/raw bytes/);
    expect(() => w.writePart("nope", new Float32Array(1))).toThrow(/not in the header plan/);
    w.writePart("big", new Float32Array([9, 10, 11]));
    w.close();
    expect(existsSync(`${p}.partial`)).toBe(false);
    expect([...readTensor(p, "big").data]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect([...readTensorBytes(p, "ids").bytes]).toEqual([1, 0, 0, 0, 2, 0, 0, 0]);

    const q = tmpFile();
    const w2 = new SafetensorsWriter(q, [{ name: "a", dtype: "F32", shape: [2] }]);
    w2.writePart("a", new Float32Array([1]));
    expect(() => w2.close()).toThrow(/not completely written/);
    expect(existsSync(q)).toBe(false);
    expect(existsSync(`${q}.partial`)).toBe(false);
  });

  it("rejects bad plans", () => {
    expect(
      () =>
        new SafetensorsWriter(tmpFile(), [
          { name: "a", dtype: "F32", shape: [1] },
          { name: "a", dtype: "F32", shape: [1] },
        ]),
    ).toThrow(/duplicate/);
    expect(() => new SafetensorsWriter(tmpFile(), [{ name: "__metadata__", dtype: "F32", shape: [1] }])).toThrow(
      /__metadata__/,
    );
    expect(() => new SafetensorsWriter(tmpFile(), [{ name: "a", dtype: "F32", shape: [-1] }])).toThrow(/shape/);
    expect(() => writeSafetensors(tmpFile(), new Map([["a", { shape: [3], data: new Float32Array(2) }]]))).toThrow(
      /2 values/,
    );
  });
});

describe("safetensors: sharded checkpoints", () => {
  function makeSharded(): string {
    const dir = mkdtempSync(join(tmp, "sharded-"));
    writeSafetensors(
      join(dir, "model-00001-of-00002.safetensors"),
      new Map([["x", { shape: [2], data: new Float32Array([1, 2]) }]]),
      { format: "pt" },
    );
    writeSafetensors(
      join(dir, "model-00002-of-00002.safetensors"),
      new Map([
        ["y", { shape: [1, 2], data: new Float32Array([3, 4]), dtype: "BF16" as const }],
        ["z", { shape: [1], data: new Float32Array([5]), dtype: "F16" as const }],
      ]),
    );
    writeSafetensorsIndex(
      join(dir, INDEX_FILE),
      new Map([
        ["x", "model-00001-of-00002.safetensors"],
        ["y", "model-00002-of-00002.safetensors"],
        ["z", "model-00002-of-00002.safetensors"],
      ]),
      14,
    );
    return dir;
  }

  it("reads the index and the tensors through it", () => {
    const dir = makeSharded();
    const idx = readSafetensorsIndex(join(dir, INDEX_FILE));
    expect(idx.metadata).toEqual({ total_size: 14 });
    const c = SafetensorsCheckpoint.open(dir);
    try {
      expect(c.sharded).toBe(true);
      expect(c.files).toEqual(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
      expect([...c.read("y").data]).toEqual([3, 4]);
      expect(c.info("z").dtype).toBe("F16");
      expect(() => c.read("w")).toThrow(UserError);
    } finally {
      c.close();
    }
    const all = readCheckpoint(dir);
    expect([...all.keys()].sort()).toEqual(["x", "y", "z"]);
    expect([...all.get("z")!.data]).toEqual([5]);
  });

  it("single-file checkpoints open the same way", () => {
    const dir = mkdtempSync(join(tmp, "single-"));
    writeSafetensors(join(dir, "model.safetensors"), new Map([["w", { shape: [1], data: new Float32Array([7]) }]]));
    const c = SafetensorsCheckpoint.open(dir);
    expect(c.sharded).toBe(false);
    expect(c.files).toEqual(["model.safetensors"]);
    expect([...c.read("w").data]).toEqual([7]);
    c.close();
  });

  it("errors: missing shard, tensor not in its shard, escaping shard name, no weights", () => {
    const dir = makeSharded();
    const idx = JSON.parse(readFileSync(join(dir, INDEX_FILE), "utf8"));
    idx.weight_map.q = "model-00001-of-00002.safetensors";
    writeFileSync(join(dir, INDEX_FILE), JSON.stringify(idx));
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/tensor q listed in the index is not in this shard/);
    idx.weight_map.q = "missing.safetensors";
    writeFileSync(join(dir, INDEX_FILE), JSON.stringify(idx));
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/shard missing.safetensors is missing/);
    idx.weight_map.q = "../evil.safetensors";
    writeFileSync(join(dir, INDEX_FILE), JSON.stringify(idx));
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/outside the checkpoint directory/);
    writeFileSync(join(dir, INDEX_FILE), "{}");
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/weight_map/);
    const empty = mkdtempSync(join(tmp, "empty-"));
    expect(() => SafetensorsCheckpoint.open(empty)).toThrow(UserError);
  });
});
