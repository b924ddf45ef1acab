/**
 * An error caused by the user's input (bad file, bad option, malformed JSON). The CLI prints its message
 * as one line and exits 2; the server maps it to a 4xx. Anything else is a bug and keeps its stack trace.
 */
export class UserError extends Error {
  override name = "UserError";
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
