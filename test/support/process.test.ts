/** The spawn helper every process test stands on (support/process.ts): its waits and its stops. */
import { describe, expect, it } from 'vitest';
import { runToExit, spawnProcess, startProcess } from '../../support/process';

const node = (name: string, script: string) => ({ name, args: ['-e', script] });

describe('support/process', () => {
  it('resolves with the ready line once printed, and keeps earlier lines and stderr', async () => {
    const { process: p, line } = await startProcess(
      node(
        'talker',
        "console.error('warming up'); console.log('one'); setTimeout(() => console.log('listening on http://127.0.0.1:1'), 50); setInterval(() => {}, 1000);",
      ),
      /listening on (\S+)/,
    );
    try {
      expect(line).toBe('listening on http://127.0.0.1:1');
      expect(p.lines).toEqual(['one', 'listening on http://127.0.0.1:1']);
      expect(await p.waitForLine(/^one$/)).toBe('one'); // a line already printed is found at once
      expect(p.running).toBe(true);
    } finally {
      expect(await p.stop()).toBe(null); // node has no SIGTERM handler here: ended by the signal
    }
    expect(p.stderr()).toContain('warming up');
  });

  it('rejects with the output when the process exits before its ready line', async () => {
    await expect(
      startProcess(node('quitter', "console.log('bad flag --x'); console.error('usage: quitter'); process.exit(2)"), /listening/),
    ).rejects.toThrow(/quitter exited \(2\) before printing a line matching \/listening\/; output:\nbad flag --x\nusage: quitter/);
  });

  it('rejects after the deadline and kills the process', async () => {
    const p = spawnProcess(node('silent', 'setInterval(() => {}, 1000)'));
    await expect(p.waitForLine(/never/, 200)).rejects.toThrow(/silent did not print a line matching \/never\/ within 200 ms/);
    expect(p.running).toBe(true); // waitForLine alone does not kill
    await p.kill();
    expect(p.running).toBe(false);
    await expect(startProcess(node('silent', 'setInterval(() => {}, 1000)'), /never/, 200)).rejects.toThrow(/within 200 ms/);
  });

  it('stop: SIGTERM first, then SIGKILL once the bound passes', async () => {
    const graceful = await startProcess(
      node(
        'graceful',
        "process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); console.log('ready'); setInterval(() => {}, 1000);",
      ),
      /ready/,
    );
    expect(await graceful.process.stop()).toBe(0);
    expect(graceful.process.lines).toContain('bye');

    const stubborn = await startProcess(
      node('stubborn', "process.on('SIGTERM', () => console.log('ignoring TERM')); console.log('ready'); setInterval(() => {}, 1000);"),
      /ready/,
    );
    expect(await stubborn.process.stop(2000)).toBe(null);
    expect(stubborn.process.proc.signalCode).toBe('SIGKILL');
    expect(stubborn.process.lines).toContain('ignoring TERM');
  });

  it('runToExit returns code and the whole output; stdin is fed when given', async () => {
    const r = await runToExit({
      name: 'cat',
      args: ['-e', "process.stdin.pipe(process.stdout); process.stdin.on('end', () => process.stderr.write('done'))"],
      input: 'line 1\nno newline',
    });
    expect(r).toEqual({ code: 0, stdout: 'line 1\nno newline', stderr: 'done' });
    await expect(runToExit(node('sleeper', 'setInterval(() => {}, 1000)'), 200)).rejects.toThrow(/sleeper did not exit within 200 ms/);
  });
});
