// Which frames of an episode the report's strip shows.

/** Up to `count` step indices spread evenly over an episode of `length` steps, first and last included. */
export function stripSteps(length: number, count: number): number[] {
  if (length <= 0) return [];
  if (length <= count) return [...Array(length).keys()];
  return [...new Set(Array.from({ length: count }, (_, i) => Math.round((i * (length - 1)) / (count - 1))))];
}
