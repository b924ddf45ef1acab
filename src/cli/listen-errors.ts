/**
 * Listening on a host and port can fail for reasons the user fixes (the port is taken, privileged, or the host is
 * not an address of this machine): those become one-line UserErrors naming the host and port; anything else is
 * returned unchanged, to keep its stack trace.
 */
import { UserError } from "../errors.js";

const FIXABLE: Readonly<Record<string, string>> = {
  EADDRINUSE: "is in use",
  EACCES: "needs more privileges",
  EADDRNOTAVAIL: "is not an address of this machine",
  ENOTFOUND: "does not resolve",
};

/** The UserError for a listen error the user can fix, else `e` itself. */
export function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined || !(code in FIXABLE)) return e;
  const what = code === "EADDRNOTAVAIL" || code === "ENOTFOUND" ? `host ${host}` : `port ${port} on ${host}`;
  return new UserError(`${what} ${FIXABLE[code]} (${code}); choose another with --host/--port (--port 0: a free one)`);
}
