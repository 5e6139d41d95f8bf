/**
 * "Did you mean" for mistyped command words and options. Small on purpose:
 * it sits on the start-up path of every command.
 */

/**
 * Optimal string alignment distance (Damerau-Levenshtein where a swap of two
 * neighbours counts as one edit, as in `stauts` → `status`).
 */
export function editDistance(a: string, b: string): number {
  // rows[i][j]: distance between the first i characters of a and the first j of b.
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i += 1) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j += 1) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const above = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((above[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (above[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row.push(best);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}

/**
 * The candidate closest to `input`, if it is close enough to be a typo: at
 * most one edit for words up to four characters, two for longer ones, or a
 * prefix of three or more characters. Ties go to the earlier candidate.
 */
export function closestMatch(input: string, candidates: readonly string[]): string | undefined {
  const limit = input.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    let distance = editDistance(input.toLowerCase(), candidate);
    if (distance > limit) {
      if (input.length >= 3 && candidate.startsWith(input)) distance = limit;
      else continue;
    }
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === input ? undefined : best;
}
