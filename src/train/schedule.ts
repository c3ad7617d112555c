// Learning-rate schedule: linear warmup from 0, then cosine decay to `minRatio` of the peak (OpenVLA trains with a
// constant rate; from scratch a warmup + cosine schedule is the standard choice and converges faster).

export interface ScheduleOptions {
  peak: number;
  warmupSteps: number;
  totalSteps: number;
  /** final rate as a fraction of the peak */
  minRatio: number;
}

/** The rate used for step `step` (0-based). */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (step < o.warmupSteps) return (o.peak * (step + 1)) / o.warmupSteps;
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  return o.peak * (o.minRatio + (1 - o.minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
