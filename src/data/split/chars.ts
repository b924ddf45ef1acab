/**
 * Character and line classes shared by the sentence splitter's modules (`../split.ts`): whitespace exactly as
 * JavaScript's `trim` sees it, word characters, list markers, trimming offsets, and the default token
 * estimate. Pure functions over strings and char codes; no state.
 */

/** A list item marker at the start of a line. */
export const LIST_ITEM_RE =
  /^[ \t]*(?:[-*+•‣◦][ \t]+\S|(?:\d{1,3}|[A-Za-z]|[ivxlcIVXLC]{1,6})[.)][ \t]+\S|\((?:\d{1,3}|[A-Za-z]|[ivxlc]{1,6})\)[ \t]+\S)/;

/** Default token estimate: runs of letters/digits count one each, every other non-space char counts one. */
export function estimateTokens(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isWordCode(c)) {
      if (!inWord) n++;
      inWord = true;
    } else {
      inWord = false;
      if (!isSpaceCode(c)) n++;
    }
  }
  return n;
}

/** Exactly the chars JavaScript's `\s` / `String.prototype.trim` treat as whitespace. */
export function isSpaceCode(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

export function isAsciiLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

export function isWordCode(c: number): boolean {
  if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return true;
  if (c < 128) return false;
  return /[\p{L}\p{N}]/u.test(String.fromCharCode(c));
}

export function skipSpace(text: string, from: number, to: number): number {
  while (from < to && isSpaceCode(text.charCodeAt(from))) from++;
  return from;
}

export function trimEnd(text: string, from: number, to: number): number {
  while (to > from && isSpaceCode(text.charCodeAt(to - 1))) to--;
  return to;
}
