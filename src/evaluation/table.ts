/** Plain-text tables as MMSeg/MMDet log them (`terminaltables`-like ASCII). */

/**
 * An ASCII table: a `+---+` rule, the centred header, a rule, the rows (first column left-aligned,
 * the others right-aligned), a closing rule.
 * @throws when a row does not have one cell per header column.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  rows.forEach((r, i) => {
    if (r.length !== header.length) throw new Error(`formatTable: row ${i} has ${r.length} cells for ${header.length} columns`);
  });
  const widths = header.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j].length)));
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const line = (cells: readonly string[], head: boolean): string =>
    '| ' +
    cells
      .map((cell, j) => {
        const w = widths[j];
        if (head) {
          const left = Math.floor((w - cell.length) / 2);
          return ' '.repeat(left) + cell + ' '.repeat(w - cell.length - left);
        }
        return j === 0 ? cell.padEnd(w) : cell.padStart(w);
      })
      .join(' | ') +
    ' |';
  return [rule, line(header, true), rule, ...rows.map((r) => line(r, false)), rule].join('\n');
}
