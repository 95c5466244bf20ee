import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { badInput, EXIT, formatMs, shown, XipError } from '../errors.ts';
import { addCleanup, trackChild } from '../proc.ts';

/**
 * A headless Chromium that opens one local HTML file and says what the page
 * did: its errors, the requests it made off the machine, the value of an
 * expression and a screenshot. It speaks the Chrome DevTools Protocol over
 * --remote-debugging-pipe (JSON messages ended by a NUL byte, commands on
 * the browser's fd 3, answers and events on its fd 4): no port to pick, no
 * WebSocket client, nothing another user on the machine could connect to.
 */

export interface PageInspection {
  /** console.error/console.assert messages, uncaught exceptions (Runtime.exceptionThrown), Log.entryAdded entries of level 'error'. One string each, with source URL:line where known. */
  errors: string[];
  /** Every request for something outside the page: any URL but the page's own file and data: / about: / blob: (a self-contained page makes none). */
  externalRequests: string[];
  /** JSON value of the `evaluate` expression (awaited if it is a Promise). */
  value: unknown;
  /** PNG bytes when `screenshot` was asked for. */
  png?: Uint8Array;
}

export interface InspectOptions {
  /** Absolute path of the HTML file to open (file:// URL built with url.pathToFileURL). */
  htmlPath: string;
  /** A JavaScript expression evaluated in the page after the load event and after `waitFor` is truthy; returnByValue + awaitPromise. */
  evaluate: string;
  /** A JavaScript expression polled (every 50 ms) until truthy before evaluating; fails with a clear error when `timeoutMs` passes. Default 'document.readyState === "complete"'. */
  waitFor?: string;
  /** Viewport (Emulation.setDeviceMetricsOverride, deviceScaleFactor 1) and screenshot size; default 1280x900. */
  viewport?: { width: number; height: number };
  /** Take a full-viewport PNG screenshot (Page.captureScreenshot) after evaluate. */
  screenshot?: boolean;
  /** Whole run, launch to exit (default 60000); shutting the browser down afterwards takes at most a few seconds more. */
  timeoutMs?: number;
  /** Path of the browser binary; default findChromium(). */
  chromium?: string;
}

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
const NOT_FOUND = 'chromium not found: install it with xip doctor --browser --install (Debian package chromium)';
const DEFAULT_WAIT_FOR = 'document.readyState === "complete"';
const POLL_MS = 50;
/** How long Browser.close may take before the process group is killed. */
const CLOSE_GRACE_MS = 2000;
const TAIL_LINES = 30;
/** Requests to these schemes need nothing outside the page. */
const INLINE_SCHEMES = new Set(['data:', 'about:', 'blob:']);

/** The browser to use: $XIP_CHROMIUM when it names an existing file, else Debian's chromium. */
export function findChromium(): string | undefined {
  const env = process.env.XIP_CHROMIUM;
  if (env !== undefined && env !== '' && existsSync(env)) return env;
  return CANDIDATES.find((p) => existsSync(p));
}

export async function inspectPage(opts: InspectOptions): Promise<PageInspection> {
  const bin = opts.chromium ?? findChromium();
  if (bin === undefined || !existsSync(bin)) throw new XipError(NOT_FOUND, { exitCode: EXIT.environment });
  if (!existsSync(opts.htmlPath)) throw badInput(`${opts.htmlPath}: no such file to open in chromium`);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const profile = mkdtempSync(join(tmpdir(), 'xip-chromium-'));
  const removeProfile = () => rmSync(profile, { recursive: true, force: true });
  const forgetCleanup = addCleanup(removeProfile);
  let browser: Browser | undefined;
  try {
    browser = new Browser(bin, profile);
    return await browser.within(timeoutMs, (b) => drive(b, opts));
  } finally {
    await browser?.shutDown();
    removeProfile();
    forgetCleanup();
  }
}

/** The page's side of the run: attach, load, wait, evaluate, screenshot. */
async function drive(b: Browser, opts: InspectOptions): Promise<PageInspection> {
  const errors: string[] = [];
  const external = new Set<string>();
  const viewport = opts.viewport ?? { width: 1280, height: 900 };
  const fileUrl = pathToFileURL(opts.htmlPath).href;
  let loading = false;
  // A host that never answers holds the load event back: the timeout's message names what the page asked for.
  const loadStep = () =>
    `the load event of ${fileUrl}${external.size > 0 ? `; the page requested ${[...external].join(', ')}` : ''}`;

  // Enabling discovery announces the targets that exist already, so this
  // also covers the about:blank page being created only after the pipe opened.
  b.step = 'the page target';
  const created = b.waitEvent('Target.targetCreated', undefined, (p) => field(p, 'targetInfo', 'type') === 'page');
  await b.send('Target.setDiscoverTargets', { discover: true });
  const targetId = str(field(await created, 'targetInfo', 'targetId'));
  b.step = 'Target.attachToTarget';
  const sessionId = str((await b.send('Target.attachToTarget', { targetId, flatten: true })).sessionId);
  if (targetId === undefined || sessionId === undefined) throw new XipError('chromium: no page target to attach to');
  const page = (method: string, params?: Json) => b.send(method, params, sessionId);

  b.onEvent(sessionId, (method, p) => {
    if (method === 'Runtime.consoleAPICalled') {
      const type = str(p.type);
      if (type === 'error' || type === 'assert') errors.push(consoleMessage(type, p));
    } else if (method === 'Runtime.exceptionThrown') {
      errors.push(exceptionMessage(p.exceptionDetails));
    } else if (method === 'Log.entryAdded') {
      if (field(p, 'entry', 'level') === 'error') errors.push(logMessage(p.entry));
    } else if (method === 'Network.requestWillBeSent') {
      const url = str(field(p, 'request', 'url'));
      // Another file on disk counts too: the page would not work where it is copied alone.
      if (url !== undefined && !INLINE_SCHEMES.has(scheme(url)) && url.split('#')[0] !== fileUrl) {
        external.add(url);
        if (loading) b.step = loadStep();
      }
    }
  });
  for (const domain of ['Runtime', 'Log', 'Page', 'Network']) {
    b.step = `${domain}.enable`;
    await page(`${domain}.enable`);
  }
  b.step = 'Emulation.setDeviceMetricsOverride';
  await page('Emulation.setDeviceMetricsOverride', { ...viewport, deviceScaleFactor: 1, mobile: false });

  b.step = `Page.navigate to ${fileUrl}`;
  // Listening before navigating: the load event of a small file can come before navigate's answer.
  const loaded = b.waitEvent('Page.loadEventFired', sessionId);
  const nav = await page('Page.navigate', { url: fileUrl });
  const navError = str(nav.errorText);
  if (navError !== undefined && navError !== '') throw new XipError(`chromium: could not open ${fileUrl}: ${navError}`);
  b.step = loadStep();
  loading = true;
  await loaded;
  loading = false;

  const waitFor = opts.waitFor ?? DEFAULT_WAIT_FOR;
  b.step = `waitFor ${shown(waitFor, 80)} to become true`;
  for (;;) {
    const r = await page('Runtime.evaluate', { expression: waitFor, returnByValue: true });
    if (r.exceptionDetails !== undefined) {
      // Not fatal: the page may define what the expression reads later.
      b.step = `waitFor ${shown(waitFor, 80)} to become true (it threw ${exceptionMessage(r.exceptionDetails)})`;
    } else if (truthy(r.result)) break;
    await new Promise((wake) => setTimeout(wake, POLL_MS));
  }

  b.step = `the value of ${shown(opts.evaluate, 80)}`;
  const r = await page('Runtime.evaluate', { expression: opts.evaluate, returnByValue: true, awaitPromise: true });
  if (r.exceptionDetails !== undefined) {
    throw new XipError(`chromium: evaluating ${shown(opts.evaluate, 80)} in ${fileUrl} failed: ${exceptionMessage(r.exceptionDetails)}`);
  }
  const value = field(r.result, 'value');

  let png: Uint8Array | undefined;
  if (opts.screenshot) {
    b.step = 'Page.captureScreenshot';
    const data = str((await page('Page.captureScreenshot', { format: 'png' })).data);
    if (data === undefined) throw new XipError('chromium: Page.captureScreenshot gave no image data');
    const buf = Buffer.from(data, 'base64');
    png = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  }
  return { errors: [...errors], externalRequests: [...external], value, ...(png ? { png } : {}) };
}

type Json = Record<string, unknown>;
type EventHandler = (method: string, params: Json) => void;

interface Waiter {
  method: string;
  sessionId: string | undefined;
  test: (params: Json) => boolean;
  resolve: (params: Json) => void;
  reject: (err: Error) => void;
}

/**
 * One browser process and its DevTools pipe. The first failure (the overall
 * timeout, the browser exiting, a garbled message) is kept: every pending
 * and later command and event wait rejects with it.
 */
class Browser {
  /** What the run waits for now, for the timeout's message. */
  step = 'the browser to start';
  private readonly child: ChildProcess;
  private readonly toBrowser: Writable;
  private readonly tail: string[] = [];
  private partialLine = '';
  private inbox: Buffer[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, { method: string; resolve: (r: Json) => void; reject: (e: Error) => void }>();
  private readonly waiters = new Set<Waiter>();
  private readonly handlers = new Map<string, EventHandler>();
  private failure: Error | undefined;
  private rejectFailed: (e: Error) => void = () => undefined;
  /** Rejects with the first failure; never resolves. */
  private readonly failed: Promise<never>;
  private exited = false;
  private readonly exit: Promise<void>;

  constructor(
    bin: string,
    /** The fresh user-data-dir: every process of this browser has it on its command line. */
    private readonly profile: string,
  ) {
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => undefined); // raced in within(); a failure while shutting down has no reader
    const args = [
      '--headless',
      '--remote-debugging-pipe',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-extensions',
      '--disable-background-networking',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      // Chromium refuses to start as root with its sandbox on.
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      'about:blank',
    ];
    this.child = spawn(bin, args, {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
      detached: true,
      // Its crash database (~/.config/chromium/Crash Reports) and the temporary
      // directories a killed browser leaves in /tmp go into the profile, removed with it.
      env: { ...process.env, XDG_CONFIG_HOME: profile, TMPDIR: profile },
    });
    trackChild(this.child);
    let markExited: () => void = () => undefined;
    this.exit = new Promise<void>((r) => (markExited = r));
    const [, , stderr, toBrowser, fromBrowser] = this.child.stdio;
    if (!(toBrowser instanceof Writable) || !(fromBrowser instanceof Readable) || !(stderr instanceof Readable)) {
      this.child.kill('SIGKILL');
      throw new XipError('chromium: no pipes to the browser process');
    }
    this.toBrowser = toBrowser;
    toBrowser.on('error', () => undefined); // EPIPE once it exits: the 'exit' handler reports that
    fromBrowser.on('error', () => undefined);
    fromBrowser.on('data', (chunk: Buffer) => this.receive(chunk));
    stderr.setEncoding('utf8');
    stderr.on('data', (text: string) => this.keepTail(text));
    this.child.on('error', (err) => {
      this.exited = true;
      markExited();
      this.fail(new XipError(`chromium: could not start ${bin}: ${err.message}`, { exitCode: EXIT.environment }));
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      markExited();
      const how = code !== null ? `exit code ${code}` : `killed by ${signal ?? 'a signal'}`;
      const report = () =>
        this.fail(new XipError(`chromium exited (${how}) while waiting for ${this.step}; last output: ${this.tailText()}`, { details: this.tailLines() }));
      // Its last words may still be in the stderr pipe: they say why.
      if (stderr.readableEnded) report();
      else {
        const late = setTimeout(report, 200);
        stderr.once('end', () => {
          clearTimeout(late);
          report();
        });
      }
    });
  }

  /** Run `work` against this browser; the first failure or `ms` passing ends it. */
  async within<T>(ms: number, work: (b: Browser) => Promise<T>): Promise<T> {
    const timer = setTimeout(
      () => this.fail(new XipError(`chromium: no answer within ${formatMs(ms)} (${this.step}); last output: ${this.tailText()}`, { details: this.tailLines() })),
      ms,
    );
    try {
      const done = work(this);
      done.catch(() => undefined); // when the race is lost, its rejection has no reader
      return await Promise.race([done, this.failed]);
    } finally {
      clearTimeout(timer);
    }
  }

  send(method: string, params?: Json, sessionId?: string): Promise<Json> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Json>((resolve, reject) => {
      this.pending.set(id, { method, resolve, reject });
      this.post({ id, method, ...(params ? { params } : {}), ...(sessionId !== undefined ? { sessionId } : {}) });
    });
  }

  /** The next event `method` (of the session, or of the browser if undefined) whose params pass `test`. */
  waitEvent(method: string, sessionId: string | undefined, test: (params: Json) => boolean = () => true): Promise<Json> {
    const waiting = this.failure
      ? Promise.reject(this.failure)
      : new Promise<Json>((resolve, reject) => this.waiters.add({ method, sessionId, test, resolve, reject }));
    waiting.catch(() => undefined); // set up before a command whose failure may leave it unawaited
    return waiting;
  }

  /** Every event of a session goes to `handler` (one handler per session). */
  onEvent(sessionId: string, handler: EventHandler): void {
    this.handlers.set(sessionId, handler);
  }

  /**
   * Ask the browser to close, give it CLOSE_GRACE_MS, then kill its process
   * group whatever it said: the renderer and utility processes it forked
   * are in there too and must not outlive a run.
   */
  async shutDown(): Promise<void> {
    if (!this.exited) {
      this.post({ id: this.nextId++, method: 'Browser.close' });
      await this.exitWithin(CLOSE_GRACE_MS);
    }
    if (this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        /* the whole group is gone already */
      }
    }
    // Reaped before returning, so a caller finds no process of this run.
    await this.exitWithin(CLOSE_GRACE_MS);
    this.child.stdio.forEach((s) => s?.destroy());
    // The crash handler double-forks out of the group; it ends itself soon after the browser.
    const deadline = Date.now() + CLOSE_GRACE_MS;
    while (processesNaming(this.profile).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const pid of processesNaming(this.profile)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }

  /** Until the process has exited, or `ms` passed. */
  private async exitWithin(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exit, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private post(message: Json): void {
    if (this.toBrowser.writable) this.toBrowser.write(`${JSON.stringify(message)}\0`);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
    this.rejectFailed(err);
  }

  private receive(chunk: Buffer): void {
    let start = 0;
    let nul: number;
    while ((nul = chunk.indexOf(0, start)) >= 0) {
      this.inbox.push(chunk.subarray(start, nul));
      const text = Buffer.concat(this.inbox).toString('utf8');
      this.inbox = [];
      start = nul + 1;
      this.dispatch(text);
    }
    if (start < chunk.length) this.inbox.push(chunk.subarray(start));
  }

  private dispatch(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      msg = undefined;
    }
    if (!isObject(msg)) {
      this.fail(new XipError(`chromium: not a JSON object on the DevTools pipe: ${shown(text)}`));
      return;
    }
    if (typeof msg.id === 'number') {
      const p = this.pending.get(msg.id);
      if (p === undefined) return; // Browser.close, or answered after a failure
      this.pending.delete(msg.id);
      if (msg.error !== undefined) {
        p.reject(new XipError(`CDP ${p.method}: ${str(field(msg.error, 'message')) ?? JSON.stringify(msg.error)}`));
      } else p.resolve(isObject(msg.result) ? msg.result : {});
      return;
    }
    const method = str(msg.method);
    if (method === undefined) return;
    const params = isObject(msg.params) ? msg.params : {};
    const sessionId = str(msg.sessionId);
    for (const w of this.waiters) {
      if (w.method === method && w.sessionId === sessionId && w.test(params)) {
        this.waiters.delete(w);
        w.resolve(params);
      }
    }
    if (sessionId !== undefined) this.handlers.get(sessionId)?.(method, params);
  }

  private keepTail(text: string): void {
    const lines = (this.partialLine + text).split('\n');
    this.partialLine = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
    }
  }

  private tailLines(): string[] {
    return this.partialLine.trim() === '' ? [...this.tail] : [...this.tail, this.partialLine];
  }

  /** The message keeps to the last few lines (chromium's D-Bus complaints come first); the details carry the rest. */
  private tailText(n = 3): string {
    const lines = this.tailLines().slice(-n);
    return lines.length > 0 ? lines.join(' | ') : '(none)';
  }
}

/** Running processes with `text` in their command line (zombies have none). */
function processesNaming(text: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text)) pids.push(Number(name));
    } catch {
      /* exited while we looked */
    }
  }
  return pids;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** o[k1][k2]... (array indexes too), undefined where something on the way is no object. */
function field(o: unknown, ...path: string[]): unknown {
  let v = o;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Json)[k];
  }
  return v;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function scheme(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:/i.exec(url);
  return m ? m[0].toLowerCase() : '';
}

/** A RemoteObject (returnByValue) as JavaScript would test it in an if. */
function truthy(remote: unknown): boolean {
  const unserializable = str(field(remote, 'unserializableValue'));
  if (unserializable !== undefined) return !['NaN', '-0', '0n', '-0n'].includes(unserializable);
  return Boolean(field(remote, 'value'));
}

/** A console argument as the console would print it, on one line. */
function remoteText(remote: unknown): string {
  const value = field(remote, 'value');
  if (typeof value === 'string') return value;
  const type = str(field(remote, 'type'));
  if (type === 'undefined') return 'undefined';
  if (field(remote, 'subtype') === 'null') return 'null';
  const text = str(field(remote, 'unserializableValue')) ?? str(field(remote, 'description'));
  if (text !== undefined) return firstLine(text);
  return value !== undefined ? JSON.stringify(value) : (type ?? '?');
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? '';
}

/** " (url:line)" for a zero-based line number, or "" without a URL. */
function where(url: unknown, line: unknown): string {
  if (typeof url !== 'string' || url === '') return '';
  return typeof line === 'number' ? ` (${url}:${line + 1})` : ` (${url})`;
}

function consoleMessage(type: string, p: Json): string {
  const args = Array.isArray(p.args) ? p.args.map(remoteText) : [];
  const text = args.length > 0 ? args.join(' ') : type === 'assert' ? 'Assertion failed' : '';
  const frame = field(p, 'stackTrace', 'callFrames', '0');
  return `console.${type}: ${text}${where(field(frame, 'url'), field(frame, 'lineNumber'))}`;
}

/** Runtime.ExceptionDetails as "Uncaught Error: message (url:line)". */
function exceptionMessage(d: unknown): string {
  const head = str(field(d, 'text')) ?? 'Uncaught';
  const exception = field(d, 'exception');
  const what = exception !== undefined ? remoteText(exception) : '';
  const text = what === '' || head.includes(what) ? head : `${head} ${what}`;
  // The details' own position when they have a URL (a script's top level), else the top frame's.
  const at = str(field(d, 'url')) !== undefined ? d : field(d, 'stackTrace', 'callFrames', '0');
  return `${text}${where(field(at, 'url'), field(at, 'lineNumber'))}`;
}

/** A Log.LogEntry as "source: text (url:line)". */
function logMessage(entry: unknown): string {
  const source = str(field(entry, 'source')) ?? 'log';
  return `${source}: ${str(field(entry, 'text')) ?? ''}${where(field(entry, 'url'), field(entry, 'lineNumber'))}`;
}
