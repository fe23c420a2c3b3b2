// Impaired links for the end-to-end tests: `impair` relays (bench/src/bin/impair.rs), each one
// UDP relay that behaves like one bad link, controlled through its stdin.
//
// Environment: DROPLINE_IMPAIR_BIN (default: target/debug/impair).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { repoRoot } from './helpers.mjs';

const READY_TIMEOUT_MS = 10_000;

export function binary(envVar, name) {
  const bin = process.env[envVar] || path.join(repoRoot, 'target', 'debug', name);
  if (!existsSync(bin)) throw new Error(`${name} not found at ${bin} (run \`make build\` or set ${envVar})`);
  return bin;
}

/** SIGKILLs `proc` and waits for it to exit; a no-op once it has. */
async function kill(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGKILL');
  await gone;
}

/**
 * Starts `impair --listen 127.0.0.1:0 --upstream UPSTREAM ...args` and resolves once it prints
 * `impair ready listen=IP:PORT`. `args` are impair flags, e.g. ['--loss', '0.03', '--delay-ms', '40'].
 *
 * @returns {Promise<{listen: string, down(), up(), set(assignments: string), stats(): Promise<string>, stop()}>}
 */
export async function startImpair(upstream, args = [], { cleanup } = {}) {
  const bin = binary('DROPLINE_IMPAIR_BIN', 'impair');
  const proc = spawn(bin, ['--listen', '127.0.0.1:0', '--upstream', upstream, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stop = () => kill(proc);
  cleanup?.add(stop);
  const stderr = [];
  readline.createInterface({ input: proc.stderr }).on('line', (l) => stderr.push(l));
  const lines = readline.createInterface({ input: proc.stdout });
  const waiting = [];
  const listen = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`impair not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`impair exited (${code}) before it was ready: ${stderr.join('\n')}`));
    });
    lines.on('line', (line) => {
      const m = /^impair ready listen=(\S+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      } else if (line.startsWith('impair stats ')) {
        waiting.shift()?.(line);
      }
    });
  });
  const send = (cmd) => proc.stdin.write(`${cmd}\n`);
  return {
    listen,
    down: () => send('down'),
    up: () => send('up'),
    set: (assignments) => send(`set ${assignments}`),
    /** One `impair stats …` line. */
    stats: () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        send('stats');
      }),
    stop,
  };
}

/**
 * Starts `srtla-send --srtla RECEIVER --link DEST…` (bench/src/bin/srtla_send.rs) and resolves once
 * its group is registered. Publish SRT to `srt`; `add(dest)` adds a link at run time.
 *
 * @returns {Promise<{srt: string, add(dest: string), lines: string[], stop()}>}
 */
export async function startSrtlaSend(receiver, links, { cleanup } = {}) {
  const bin = binary('DROPLINE_SRTLA_SEND_BIN', 'srtla-send');
  const args = ['--srtla', receiver, ...links.flatMap((l) => ['--link', l])];
  const proc = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const stop = () => kill(proc);
  cleanup?.add(stop);
  const lines = [];
  readline.createInterface({ input: proc.stderr }).on('line', (l) => lines.push(`[stderr] ${l}`));
  const out = readline.createInterface({ input: proc.stdout });
  const srt = await new Promise((resolve, reject) => {
    let addr = null;
    const timer = setTimeout(() => reject(new Error(`srtla-send not registered within ${READY_TIMEOUT_MS} ms: ${lines.join(' | ')}`)), READY_TIMEOUT_MS);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`srtla-send exited (${code}): ${lines.join(' | ')}`));
    });
    out.on('line', (line) => {
      lines.push(line);
      const m = /^srtla-send ready srt=(\S+)$/.exec(line);
      if (m) addr = m[1];
      if (line === 'registered' && addr) {
        clearTimeout(timer);
        resolve(addr);
      }
    });
  });
  return {
    srt,
    add: (dest) => proc.stdin.write(`add ${dest}\n`),
    lines,
    stop,
  };
}
