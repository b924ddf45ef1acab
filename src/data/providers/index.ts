/**
 * Provider factory: `createProvider({provider: "offline"})` or `createProvider({provider: "openai", ...})`.
 * Options are validated here (zod); a bad option is a UserError naming the field.
 */
import { z } from "zod";
import { UserError } from "../../errors.js";
import type { Provider } from "../types.js";
import { OfflineProvider, type OfflineProviderOptions } from "./offline.js";
import { OpenAIProvider, type OpenAIProviderOptions } from "./openai.js";

export { OfflineProvider, type OfflineProviderOptions } from "./offline.js";
export {
  OpenAIProvider,
  ProviderAnswerError,
  ProviderRequestError,
  RateLimiter,
  TokenBucket,
  type OpenAIProviderOptions,
  type ProviderEvent,
  type ProviderStats,
  type Prices,
  type RateLimitOptions,
  type RetryOptions,
  type StageModels,
} from "./openai.js";

export type ProviderKind = "offline" | "openai";

export type ProviderOptions =
  | ({ provider: "offline" } & OfflineProviderOptions)
  | ({ provider: "openai" } & OpenAIProviderOptions);

const positive = z.number().positive();
const modelName = z.string().trim().min(1);

const OpenAISchema = z
  .object({
    provider: z.literal("openai"),
    baseURL: z.url().optional(),
    apiKey: z.string().min(1).optional(),
    model: modelName.optional(),
    models: z
      .object({ score: modelName.optional(), compress: modelName.optional(), judge: modelName.optional() })
      .strict()
      .optional(),
    jsonMode: z.boolean().optional(),
    temperature: z.number().min(0).max(2).optional(),
    maxTokens: z.number().int().positive().optional(),
    retry: z
      .object({
        attempts: z.number().int().min(1).max(100).optional(),
        baseDelayMs: z.number().min(0).optional(),
        maxDelayMs: z.number().min(0).optional(),
        maxRetryAfterMs: z.number().min(0).optional(),
        timeoutMs: positive.optional(),
      })
      .strict()
      .optional(),
    rateLimit: z
      .object({ requestsPerMinute: positive.optional(), tokensPerMinute: positive.optional() })
      .strict()
      .optional(),
    prices: z
      .object({ inputPerMillion: z.number().min(0), outputPerMillion: z.number().min(0) })
      .strict()
      .optional(),
  })
  .loose()
  .refine((o) => o.model !== undefined || (o.models?.score && o.models?.compress && o.models?.judge), {
    message: "set model (or models.score, models.compress and models.judge)",
    path: ["model"],
  });

const OfflineSchema = z
  .object({
    provider: z.literal("offline"),
    mementoRatio: z.number().gt(0).max(1).optional(),
  })
  .loose();

function check(schema: z.ZodType, options: unknown): void {
  const r = schema.safeParse(options);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UserError(`provider option ${i.path.join(".") || "(options)"}: ${i.message}`);
  }
}

export function createProvider(options: ProviderOptions): Provider {
  switch (options.provider) {
    case "offline":
      check(OfflineSchema, options);
      return new OfflineProvider(options);
    case "openai": {
      check(OpenAISchema, options);
      try {
        return new OpenAIProvider(options);
      } catch (e) {
        if (e instanceof RangeError) throw new UserError(e.message);
        throw e;
      }
    }
    default:
      throw new UserError(
        `unknown provider ${JSON.stringify((options as { provider?: unknown }).provider)} (expected "offline" or "openai")`,
      );
  }
}
