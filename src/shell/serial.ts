// "Run, and run again if asked meanwhile": the one way the shells run a job that must not overlap itself (the agent's
// reconcile and its tunnel reads, the git source's fetch, the sync's reconcile).

export interface SerialRunnerOptions {
  /** Checked before every run: once true, nothing more runs. */
  stopped?: () => boolean;
  /** After the last run of a burst, whatever happened (a timer to re-arm, a job that waited for this one). */
  settled?: () => void;
}

/**
 * Runs `job` one at a time. A run asked for while one is in progress happens once, right after it: any number of
 * requests in the meantime fold into that one run. `run()` resolves when the burst it joined has settled.
 */
export class SerialRunner {
  private readonly job: () => Promise<void>;
  private readonly options: SerialRunnerOptions;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(job: () => Promise<void>, options: SerialRunnerOptions = {}) {
    this.job = job;
    this.options = options;
  }

  /** Whether a run is in progress (or about to run again). */
  get busy(): boolean {
    return this.running !== undefined;
  }

  run(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    // Recorded before the first job starts: a job that ends at once must still find its burst recorded to clear it.
    const burst = Promise.resolve().then(() => this.drain());
    this.running = burst;
    return burst;
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        if (this.options.stopped?.() === true) break;
        await this.job();
      } while (this.again);
    } finally {
      this.running = undefined;
      this.options.settled?.();
    }
  }

  /** Resolves once no run is in progress (at once when none is); never rejects. */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running.catch(() => undefined);
  }
}
