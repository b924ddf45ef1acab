/**
 * MASKING_FIELDS is the one definition of the block-masking settings: the type, the defaults, the zod schema and
 * the snake_case names of the HTTP API all come from it and must agree with it (and with each other).
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  DEFAULT_MASKING,
  MASKING_FIELD_NAMES,
  MASKING_FIELDS,
  maskingConfigSchema,
  maskingFromSnakeCase,
  maskingToSnakeCase,
  resolveMasking,
  type MaskingConfig,
} from "../src/masking/config.js";
import { parseMasking } from "../src/server/schema.js";

const snake = (camel: string) => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const kebab = (camel: string) => camel.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

describe("the masking table", () => {
  it("derives the MaskingConfig type", () => {
    expectTypeOf<MaskingConfig>().toEqualTypeOf<{
      keepLastNBlocks: number;
      maskDelimiters: boolean;
      requireAssistantSection: boolean;
      compactOnSummaryEnd: boolean;
      keepLastBlockForAnswer: boolean;
      restartMode: boolean;
      maxBlockTokens: number;
    }>();
  });

  it("gives the paper's defaults (Memento attention for Qwen3)", () => {
    expect(DEFAULT_MASKING).toEqual({
      keepLastNBlocks: 0,
      maskDelimiters: false,
      requireAssistantSection: false,
      compactOnSummaryEnd: true,
      keepLastBlockForAnswer: false,
      restartMode: false,
      maxBlockTokens: 0,
    });
    expect(Object.isFrozen(DEFAULT_MASKING)).toBe(true);
  });

  it("agrees with the defaults and the schema, field by field", () => {
    expect(Object.keys(DEFAULT_MASKING)).toEqual(MASKING_FIELD_NAMES);
    expect(Object.keys(maskingConfigSchema.shape)).toEqual(MASKING_FIELD_NAMES);
    for (const k of MASKING_FIELD_NAMES) {
      const f = MASKING_FIELDS[k];
      expect(DEFAULT_MASKING[k], k).toBe(f.default);
      expect(f.schema.safeParse(f.default).success, k).toBe(true);
      expect(typeof f.default, k).toBe(typeof DEFAULT_MASKING[k]);
    }
    expect(maskingConfigSchema.parse({ ...DEFAULT_MASKING })).toEqual(DEFAULT_MASKING);
    expect(resolveMasking()).toEqual(DEFAULT_MASKING);
    expect(resolveMasking({ keepLastNBlocks: -1 })).toEqual({ ...DEFAULT_MASKING, keepLastNBlocks: -1 });
  });

  it("names each field consistently: snake_case over HTTP, a kebab-case flag that matches the default", () => {
    for (const k of MASKING_FIELD_NAMES) {
      const f = MASKING_FIELDS[k];
      expect(f.http, k).toBe(snake(k));
      expect(f.help.length, k).toBeGreaterThan(0);
      if (f.flag === null) continue;
      if (typeof f.default === "number") expect(f.flag, k).toBe(`--${kebab(k)} <n>`);
      else expect(f.flag, k).toBe(f.default ? `--no-${kebab(k)}` : `--${kebab(k)}`);
    }
  });

  it("the schema keeps its bounds and refuses unknown keys", () => {
    expect(maskingConfigSchema.safeParse({ keepLastNBlocks: -1 }).success).toBe(true);
    expect(maskingConfigSchema.safeParse({ keepLastNBlocks: -2 }).success).toBe(false);
    expect(maskingConfigSchema.safeParse({ keepLastNBlocks: 1.5 }).success).toBe(false);
    expect(maskingConfigSchema.safeParse({ maxBlockTokens: -1 }).success).toBe(false);
    expect(maskingConfigSchema.safeParse({ maskDelimiters: "yes" }).success).toBe(false);
    expect(maskingConfigSchema.safeParse({ keep: 1 }).success).toBe(false);
    expect(maskingConfigSchema.parse({})).toEqual({});
  });
});

describe("snake_case mapping", () => {
  const changed: MaskingConfig = {
    keepLastNBlocks: 2,
    maskDelimiters: true,
    requireAssistantSection: true,
    compactOnSummaryEnd: false,
    keepLastBlockForAnswer: true,
    restartMode: true,
    maxBlockTokens: 512,
  };

  it("round-trips every field", () => {
    for (const config of [DEFAULT_MASKING, changed, { keepLastNBlocks: -1 }, {}]) {
      const wire = maskingToSnakeCase(config);
      for (const key of Object.keys(wire)) expect(key).toMatch(/^[a-z_]+$/);
      expect(maskingConfigSchema.parse(maskingFromSnakeCase(wire))).toEqual(config);
    }
    expect(Object.keys(maskingToSnakeCase(changed)).sort()).toEqual(MASKING_FIELD_NAMES.map(snake).sort());
  });

  it("passes camelCase and unknown keys through, for the schema to judge", () => {
    expect(maskingFromSnakeCase({ keep_last_n_blocks: -1, maskDelimiters: true, nope: 1 })).toEqual({
      keepLastNBlocks: -1,
      maskDelimiters: true,
      nope: 1,
    });
  });

  it("is what the server reads from block_masking (and its alias memento)", () => {
    expect(parseMasking({ block_masking: { keep_last_n_blocks: -1, max_block_tokens: 64 } })).toEqual({
      keepLastNBlocks: -1,
      maxBlockTokens: 64,
    });
    expect(parseMasking({ memento: maskingToSnakeCase(changed) })).toEqual(changed);
    expect(() => parseMasking({ block_masking: { keep_last_n_blocks: -2 } })).toThrow();
    expect(() => parseMasking({ block_masking: { keep_everything: true } })).toThrow();
  });
});
