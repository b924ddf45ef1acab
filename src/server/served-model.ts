/**
 * The one model a server serves: its id, the other names it answers to, and its card in /v1/models.
 * A request naming any other model is refused with 404 `model_not_found` (param "model").
 */
import { ApiError } from "./errors.js";

export interface ModelCard {
  id: string;
  object: "model";
  /** Unix seconds: when the server was built. */
  created: number;
  owned_by: "memento";
  max_model_len: number;
}

export class ServedModel {
  private readonly names: ReadonlySet<string>;

  constructor(
    /** The id of /v1/models. */
    readonly id: string,
    /** Longest prompt + completion, in tokens. */
    readonly maxModelLen: number,
    /** Other names accepted as `model` (e.g. the directory given on the command line). */
    aliases: readonly string[] = [],
    readonly created: number = Math.floor(Date.now() / 1000),
  ) {
    this.names = new Set([id, ...aliases]);
  }

  accepts(name: string): boolean {
    return this.names.has(name);
  }

  /** Throws the 404 for a name this server does not serve. */
  require(name: string): void {
    if (!this.accepts(name)) throw this.notFound(name);
  }

  notFound(name: string): ApiError {
    const message = `The model \`${name}\` does not exist. This server serves \`${this.id}\`.`;
    return new ApiError(404, message, "model_not_found", "model");
  }

  card(): ModelCard {
    return {
      id: this.id,
      object: "model",
      created: this.created,
      owned_by: "memento",
      max_model_len: this.maxModelLen,
    };
  }
}
