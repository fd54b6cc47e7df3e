/** Runs a CLI under tools/ as a user would (node + tsx), from the repository root. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `tools/<tool>` with `args`; `env` entries are added to the current environment. */
export function runTool(tool: string, args: string[], env: Record<string, string> = {}): ToolResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tools', tool), ...args], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
