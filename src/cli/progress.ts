import cliProgress from "cli-progress";
import type { BuildProgress } from "../data/runner.js";

/**
 * Progress for long jobs: a bar with ETA, counts, tokens and cost on a TTY (cli-progress), plain log lines
 * otherwise (CI logs, pipes), at most one every `logEveryMs`.
 */
export class ProgressReporter {
  private bar: cliProgress.SingleBar | undefined;
  private lastLog = 0;
  private readonly started = Date.now();

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly logEveryMs = 2000,
  ) {}

  update(p: BuildProgress): void {
    const payload = {
      completed: p.completed,
      failed: p.failed,
      tokens: (p.usage.promptTokens + p.usage.completionTokens).toLocaleString("en-US"),
      cost: p.cost.toFixed(4),
    };
    if (this.stream.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            stream: this.stream,
            format: `${this.label} [{bar}] {value}/{total} | ETA {eta_formatted} | ok {completed} failed {failed} | tokens {tokens} | $ {cost}`,
            hideCursor: true,
            etaBuffer: 20,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(p.total, p.done, payload);
      } else {
        this.bar.update(p.done, payload);
      }
      return;
    }
    const now = Date.now();
    if (p.done === p.total || now - this.lastLog >= this.logEveryMs || p.done === 0) {
      this.lastLog = now;
      const elapsed = (now - this.started) / 1000;
      const fresh = p.done - p.resumed;
      const eta = fresh > 0 ? ((p.total - p.done) * elapsed) / fresh : NaN;
      this.stream.write(
        `${this.label}: ${p.done}/${p.total} (ok ${p.completed}, failed ${p.failed}, resumed ${p.resumed}) ` +
          `tokens ${payload.tokens} cost $${payload.cost}${Number.isFinite(eta) ? ` eta ${eta.toFixed(0)}s` : ""}\n`,
      );
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
