/**
 * Synthetic raw reasoning traces (OpenThoughts-like `cot` records) for pipeline tests: long enough to form
 * several >= 200-token blocks, deterministic for a given index.
 */
export function syntheticTraceRecord(
  i: number,
  steps = 60,
): { task_id: string; problem: string; cot: string; domain: string; source: string } {
  const a = 3 + (i % 7);
  const b = 5 + (i % 11);
  const m = 97;
  const lines: string[] = [
    `Okay, we iterate x <- (${a}x + ${b}) mod ${m} starting from x = ${i % m}, for ${steps} steps.`,
  ];
  let x = i % m;
  for (let k = 1; k <= steps; k++) {
    const next = (a * x + b) % m;
    lines.push(`Step ${k}: ${a} * ${x} + ${b} = ${a * x + b}, and ${a * x + b} mod ${m} = ${next}.`);
    if (k % 12 === 0)
      lines.push(
        `\nLet me double-check step ${k} before moving on. Recomputing gives ${next} again, so the running value is ${next}.\n`,
      );
    if (k % 20 === 0)
      lines.push(
        `Alternatively, I could look for a cycle, but the direct computation is simple enough, so I will continue with it.`,
      );
    x = next;
  }
  lines.push(`So after ${steps} steps the value is ${x}.`);
  return {
    task_id: `synthetic-${i}`,
    problem: `Start from x = ${i % m} and apply x <- (${a}x + ${b}) mod ${m} ${steps} times. What is x?`,
    cot: `<think>\n${lines.join(" ")}\n</think>\n\nThe final value is \\boxed{${x}}.`,
    domain: "math",
    source: "synthetic",
  };
}
