/**
 * A terminal chart of KV trajectories (resident tokens after each output token), drawn with plain
 * characters so it survives any terminal or log: `#` for the Memento series, `.` for the vanilla series
 * where it lies above it.
 */
export function renderKvChart(
  series: { memento: number[]; vanilla: number[] },
  options: { width?: number; height?: number } = {},
): string {
  const width = Math.max(10, options.width ?? 64);
  const height = Math.max(4, options.height ?? 12);
  const n = Math.max(series.memento.length, series.vanilla.length);
  if (n === 0) return "(no output tokens)";
  const top = Math.max(1, ...series.vanilla, ...series.memento);
  const bucket = (values: number[], c: number) => {
    const from = Math.floor((c * values.length) / width);
    const to = Math.max(from + 1, Math.floor(((c + 1) * values.length) / width));
    let m = 0;
    for (let i = from; i < to && i < values.length; i++) if (values[i] > m) m = values[i];
    return m;
  };
  const cols = Math.min(width, n);
  const mem = Array.from({ length: cols }, (_, c) => bucket(series.memento, c));
  const van = Array.from({ length: cols }, (_, c) => bucket(series.vanilla, c));
  const label = String(top).length;
  const lines: string[] = [];
  for (let r = height; r >= 1; r--) {
    const level = (r - 0.5) * (top / height);
    let row = "";
    for (let c = 0; c < cols; c++) row += mem[c] >= level ? "#" : van[c] >= level ? "." : " ";
    const axis = r === height ? String(top).padStart(label) : r === 1 ? "0".padStart(label) : " ".repeat(label);
    lines.push(`${axis} |${row}`);
  }
  lines.push(`${" ".repeat(label)} +${"-".repeat(cols)}`);
  lines.push(`${" ".repeat(label)}  output tokens 0..${n}   # memento   . vanilla (full attention)`);
  return lines.join("\n");
}
