/**
 * A client that goes away (closes the socket, aborts the fetch) before its answer is complete cancels its
 * request, so the engine frees the request's KV at once instead of generating for nobody.
 */
import type { RequestHandle } from "../engine/types.js";

type Listener = () => void;

/** The parts of http.IncomingMessage watched for an abort. */
export interface WatchedRequest {
  on(event: "aborted", listener: Listener): unknown;
  off(event: "aborted", listener: Listener): unknown;
  readonly socket?: { readonly destroyed: boolean } | null;
}

/** The parts of http.ServerResponse watched for a close before the end. */
export interface WatchedResponse {
  on(event: "close", listener: Listener): unknown;
  off(event: "close", listener: Listener): unknown;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

/** Cancels `handle` when the client disconnects before the response ended; returns the function that stops watching. */
export function cancelOnDisconnect(
  req: WatchedRequest,
  res: WatchedResponse,
  handle: Pick<RequestHandle, "cancel">,
): () => void {
  const onClose = () => {
    if (!res.writableEnded) handle.cancel();
  };
  res.on("close", onClose);
  req.on("aborted", onClose);
  if (res.destroyed || req.socket?.destroyed) handle.cancel();
  return () => {
    res.off("close", onClose);
    req.off("aborted", onClose);
  };
}
