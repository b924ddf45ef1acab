/**
 * Where a listening server is bound, and what that exposes:
 *  1. the bound host is the address the socket reports (`server.address()`), not the `--host` asked for: a name
 *     such as `localhost` shows as the address it resolved to, a wildcard (`0.0.0.0`, `::`) as itself;
 *  2. a loopback host is 127.0.0.0/8, ::1 or an IPv4-mapped 127.x (only this machine reaches it); anything else,
 *     wildcards included, is reachable from the network;
 *  3. a server reachable from the network without an API key serves anyone who can reach its port: the caller
 *     warns (`memento serve` prints one line).
 */
import { isIP } from "node:net";

/** The parts of net.Server read here. */
export interface AddressSource {
  address(): { address: string; port: number } | string | null;
}

/** The host and port the server is bound to (clause 1); `fallback` when the socket reports no address. */
export function boundAddress(server: AddressSource, fallback: { host: string; port: number }) {
  const a = server.address();
  return typeof a === "object" && a !== null ? { host: a.address, port: a.port } : fallback;
}

/** True for a loopback address or the name `localhost` (clause 2). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h === "::1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

/** A host as it goes in a URL: IPv6 addresses in brackets. */
export function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** The host a client on this machine connects to: the IPv4 wildcard is reached at 127.0.0.1. */
export function clientHost(boundHost: string): string {
  return boundHost === "0.0.0.0" ? "127.0.0.1" : boundHost;
}

/** Whether a server bound to `host` with this API key serves anyone on the network (clause 3). */
export function exposedWithoutKey(host: string, apiKey: string | undefined): boolean {
  return apiKey === undefined && !isLoopbackHost(host);
}
