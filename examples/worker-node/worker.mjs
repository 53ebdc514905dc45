#!/usr/bin/env node
// A Boomerang worker for Node 18 or later, with no dependencies (global fetch).
//
// Copy this file, replace handle() with your own work, and run it:
//
//   BOOMERANG_URL=http://localhost:8080 BOOMERANG_WORKER_KEY=bmw_... \
//   BOOMERANG_TYPES=wordcount node worker.mjs
//
// BOOMERANG_CONCURRENCY async loops each long-poll POST /v1/worker/claim. With
// a job in hand a loop runs handle() while a timer renews the lease every
// leaseSeconds/3, then reports complete or fail. A 409 from the server
// (lease-lost, job-canceled, job-expired) means the job is no longer ours: the
// worker drops it without reporting anything. Network errors and 5xx answers
// are retried with exponential backoff. SIGTERM or SIGINT lets running jobs
// finish, then the worker exits 0; a second signal exits at once.

import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";

const PROBLEM_BASE = "https://boomerang.dev/problems/";

// ---- the work: replace handle() with yours ---------------------------------

/** Throw it from handle() for a failure that retrying will not fix. */
export class PermanentError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * The example work: counts the words of payload.text.
 *
 * payload: {"text": "...", "ref": any JSON (echoed back as is),
 *           "delaySeconds": number (optional; stands for slow work)}
 * result:  {"words": <count>, "ref": <payload.ref>}
 *
 * JSON.parse turns integers beyond 2^53 into nearby doubles, so ref is copied
 * from job.rawPayload, the payload's JSON text, and the result is returned as
 * raw JSON text: a ref of any size comes back value-exact.
 * job.progress() sends a heartbeat at once and throws JobDropped if the job is
 * no longer ours (canceled, expired, lease lost): long work should call it
 * between steps.
 */
export async function handle(job) {
  const payload = job.payload !== null && typeof job.payload === "object" ? job.payload : {};
  if (typeof payload.text !== "string") {
    throw new PermanentError("bad_payload", "payload.text must be a string");
  }
  const delay = payload.delaySeconds ?? 0;
  if (typeof delay !== "number" || !(delay >= 0 && delay <= 3600)) {
    throw new PermanentError("bad_payload", "payload.delaySeconds must be a number of seconds, 0 to 3600");
  }

  await job.progress(10, "counting words");
  await sleep((delay * 1000) / 2);
  const words = payload.text.split(/\s+/).filter(Boolean).length;
  await job.progress(50, `counted ${words} words`);
  await sleep((delay * 1000) / 2);
  const ref = rawMember(job.rawPayload, "ref") ?? "null";
  return rawJSON(`{"words":${words},"ref":${ref}}`);
}

// ---- raw JSON ------------------------------------------------------------------

class RawJSON {
  constructor(text) {
    this.text = text;
  }
}

/** Wraps JSON text that the worker sends as is, instead of JSON.stringify(value). */
export function rawJSON(text) {
  JSON.parse(text); // fail here, in the handler, rather than at the server
  return new RawJSON(text);
}

function toJSON(value) {
  return value instanceof RawJSON ? value.text : JSON.stringify(value) ?? "null";
}

/**
 * Returns the JSON source text of member `key` of the JSON object in `text`, or
 * undefined if it has none. `text` must be valid JSON (it has been parsed).
 */
export function rawMember(text, key) {
  let i = skipSpace(text, 0);
  if (text[i] !== "{") return undefined;
  i = skipSpace(text, i + 1);
  while (i < text.length && text[i] === '"') {
    const keyEnd = skipValue(text, i);
    const name = JSON.parse(text.slice(i, keyEnd));
    const start = skipSpace(text, skipSpace(text, keyEnd) + 1); // past the ':'
    const end = skipValue(text, start);
    if (name === key) return text.slice(start, end);
    i = skipSpace(text, end);
    if (text[i] === ",") i = skipSpace(text, i + 1);
  }
  return undefined;
}

function skipSpace(s, i) {
  while (i < s.length && " \t\r\n".includes(s[i])) i++;
  return i;
}

function skipValue(s, i) {
  let depth = 0;
  do {
    const c = s[i];
    if (c === '"') {
      for (i++; i < s.length && s[i] !== '"'; i++) if (s[i] === "\\") i++;
      i++;
    } else if (c === "{" || c === "[") {
      depth++;
      i++;
    } else if (c === "}" || c === "]") {
      depth--;
      i++;
    } else if (depth > 0) {
      i++;
    } else {
      while (i < s.length && !",}] \t\r\n".includes(s[i])) i++; // number, true, false, null
    }
  } while (depth > 0 && i < s.length);
  return i;
}

// ---- configuration ----------------------------------------------------------------

function loadConfig(env) {
  const errors = [];
  const url = (env.BOOMERANG_URL ?? "").replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]+/.test(url)) errors.push("BOOMERANG_URL must be an http:// or https:// URL");
  const key = env.BOOMERANG_WORKER_KEY ?? "";
  if (!key.startsWith("bmw_")) errors.push("BOOMERANG_WORKER_KEY must be a worker key (bmw_...)");
  const types = (env.BOOMERANG_TYPES ?? "").split(",").map((t) => t.trim()).filter(Boolean);
  if (types.length === 0) errors.push("BOOMERANG_TYPES must list the job types to claim, e.g. wordcount,transcode");
  const integer = (name, def, low, high) => {
    const raw = env[name] || String(def);
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= low && n <= high)) {
      errors.push(`${name} must be an integer from ${low} to ${high}, not ${JSON.stringify(raw)}`);
      return def;
    }
    return n;
  };
  return {
    url,
    key,
    types,
    concurrency: integer("BOOMERANG_CONCURRENCY", 1, 1, 1000),
    leaseSeconds: integer("BOOMERANG_LEASE_SECONDS", 60, 5, 3600),
    waitSeconds: integer("BOOMERANG_WAIT_SECONDS", 30, 0, 60),
    errors,
  };
}

// ---- HTTP --------------------------------------------------------------------------

/** One HTTP answer: status, body text and, for errors, the problem slug. */
class Answer {
  constructor(status, text) {
    this.status = status;
    this.text = text;
    this.problem = {};
    if (status >= 400 && text) {
      try {
        this.problem = JSON.parse(text) ?? {};
      } catch {}
    }
    const type = String(this.problem.type ?? "");
    this.slug = type.startsWith(PROBLEM_BASE) ? type.slice(PROBLEM_BASE.length) : type;
  }

  get retryable() {
    return this.status >= 500 || this.status === 429;
  }

  describe() {
    const detail = this.problem.detail || this.problem.title || this.text.slice(0, 200);
    return `HTTP ${this.status} ${this.slug}: ${detail}`;
  }
}

class Api {
  constructor(cfg) {
    this.base = cfg.url;
    // The key lives only in these headers; nothing logs them.
    this.headers = {
      Authorization: `Bearer ${cfg.key}`,
      "Content-Type": "application/json",
      "User-Agent": "boomerang-worker-node/1",
    };
  }

  /**
   * Posts body (JSON text) once. Rejects on network errors, on timeoutMs, and
   * when signal aborts. traceparent, the job's trace context from its claim,
   * joins the call to the job's trace when the server exports traces.
   */
  async post(path, body, { timeoutMs, signal, traceparent }) {
    const ctl = new AbortController(); // AbortSignal.any needs Node 20.3
    const timer = setTimeout(() => ctl.abort(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => ctl.abort(signal.reason);
    signal?.addEventListener("abort", onAbort);
    try {
      if (signal?.aborted) throw signal.reason;
      const headers = traceparent ? { ...this.headers, traceparent } : this.headers;
      const res = await fetch(this.base + path, { method: "POST", headers, body, signal: ctl.signal });
      return new Answer(res.status, await res.text());
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to 30 s. */
function backoff() {
  let delay = 500;
  return () => {
    const d = delay * (0.5 + Math.random() / 2);
    delay = Math.min(delay * 2, 30_000);
    return d;
  };
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

function log(...parts) {
  const time = new Date().toISOString().slice(11, 19);
  console.error(time, "boomerang-worker:", ...parts);
}

const errorText = (e) => String(e?.cause?.message ?? e?.message ?? e);

// ---- a claimed job -------------------------------------------------------------------

/** The server took the job back (lease-lost, job-canceled, job-expired). */
export class JobDropped extends Error {}

class Job {
  constructor(worker, claim, rawPayload) {
    this.id = claim.requestId;
    this.type = claim.type;
    this.payload = claim.payload; // parsed: integers beyond 2^53 are rounded
    this.rawPayload = rawPayload; // the payload's JSON text, exact
    this.metadata = claim.metadata ?? {};
    this.attempt = claim.attempt ?? 1;
    this.deadline = claim.deadline ?? null;
    this.leaseId = claim.leaseId;
    // The job's trace context (W3C), when the server exports traces: sent
    // back with every call about the job; a handler may pass it on too.
    this.traceparent = claim.traceparent;
    this.dropReason = null; // set when the server says the job is not ours
    this.worker = worker;
    this.latestProgress = null;
    this.beats = Promise.resolve(); // heartbeats go one at a time, in order
  }

  /** Records progress, sends it in a heartbeat now, and throws JobDropped if the job is no longer ours. */
  async progress(percent, message = "") {
    this.latestProgress = { percent, message };
    await this.heartbeat();
    this.check();
  }

  /** Throws JobDropped if the server took the job back. */
  check() {
    if (this.dropReason !== null) throw new JobDropped(this.dropReason);
  }

  /** Renews the lease with the latest progress. A failed heartbeat is not retried: the next one comes within leaseSeconds/3. */
  heartbeat() {
    this.beats = this.beats.then(() => this.beatOnce());
    return this.beats;
  }

  async beatOnce() {
    if (this.dropReason !== null) return;
    const body = { leaseId: this.leaseId };
    if (this.latestProgress) body.progress = this.latestProgress;
    let a;
    try {
      a = await this.worker.api.post(`/v1/worker/jobs/${this.id}/heartbeat`, JSON.stringify(body), {
        timeoutMs: 10_000,
        traceparent: this.traceparent,
      });
    } catch (e) {
      log(`job ${this.id}: heartbeat failed: ${errorText(e)}`);
      return;
    }
    if (a.status === 409) this.dropReason = a.slug || "conflict";
    else if (a.status !== 200) log(`job ${this.id}: heartbeat refused: ${a.describe()}`);
  }
}

// ---- the worker ----------------------------------------------------------------------------

class Worker {
  constructor(cfg, handler) {
    this.cfg = cfg;
    this.api = new Api(cfg);
    this.handler = handler;
    this.stopping = new AbortController(); // aborts claims in flight, not jobs
    this.exitCode = 0;
  }

  stop() {
    this.stopping.abort(new Error("stopping"));
  }

  fatal(message) {
    log(message);
    this.exitCode = 1;
    this.stop();
  }

  async loop() {
    while (!this.stopping.signal.aborted) {
      try {
        const job = await this.claim();
        if (job) await this.run(job);
      } catch (e) {
        // a bug or a garbled answer: keep the loop alive
        log("unexpected error:", e);
        await sleep(1000, this.stopping.signal);
      }
    }
  }

  /** Returns a claimed job, or null when the wait ended empty or we stop. */
  async claim() {
    const { types, waitSeconds, leaseSeconds } = this.cfg;
    const body = JSON.stringify({ types, waitSeconds, leaseSeconds });
    const signal = this.stopping.signal;
    const next = backoff();
    while (!signal.aborted) {
      let a, reason;
      try {
        a = await this.api.post("/v1/worker/claim", body, { timeoutMs: (waitSeconds + 15) * 1000, signal });
      } catch (e) {
        reason = `network error: ${errorText(e)}`;
      }
      if (a?.status === 200) {
        const claim = JSON.parse(a.text);
        return new Job(this, claim, rawMember(a.text, "payload") ?? "null");
      }
      if (a?.status === 204) return null;
      if (a && !a.retryable) {
        this.fatal(`claim refused, stopping: ${a.describe()}`);
        return null;
      }
      if (signal.aborted) return null;
      const delay = next();
      log(`claim: ${a ? a.describe() : reason}; retrying in ${(delay / 1000).toFixed(1)}s`);
      await sleep(delay, signal);
    }
    return null;
  }

  async run(job) {
    log(`job ${job.id} (${job.type}, attempt ${job.attempt}) claimed`);
    const timer = setInterval(() => job.heartbeat(), (this.cfg.leaseSeconds * 1000) / 3);
    let report = null;
    try {
      report = ["complete", `{"leaseId":${JSON.stringify(job.leaseId)},"result":${toJSON(await this.handler(job))}}`];
    } catch (e) {
      if (e instanceof PermanentError) {
        report = ["fail", failure(job, e.code, e.message, false)];
      } else if (!(e instanceof JobDropped)) {
        log(`job ${job.id}: handler threw:`, e);
        report = ["fail", failure(job, "handler_error", `${e?.name ?? "Error"}: ${e?.message ?? e}`, true)];
      }
    } finally {
      clearInterval(timer);
      await job.beats; // a heartbeat in flight may yet say the job is gone
    }
    if (job.dropReason !== null || report === null) {
      log(`job ${job.id} dropped: ${job.dropReason}`);
      return;
    }
    await this.report(job, ...report);
  }

  async report(job, verb, body) {
    const a = await this.postJobCall(job, verb, body);
    if (!a) return;
    if (a.status === 200) {
      log(`job ${job.id}: ${verb} -> ${JSON.parse(a.text).status}`);
    } else if (a.status === 409) {
      log(`job ${job.id} dropped: ${a.slug || "conflict"}`);
    } else if (verb === "complete" && (a.status === 413 || a.status === 422)) {
      log(`job ${job.id}: result refused (${a.describe()}); reporting a failure`);
      const detail = a.problem.detail || "the server refused the result";
      await this.report(job, "fail", failure(job, "result_rejected", detail, false));
    } else {
      log(`job ${job.id}: ${verb} refused: ${a.describe()}`);
    }
  }

  /**
   * Posts complete or fail, retrying network errors and 5xx with the same body
   * for up to leaseSeconds; past that the lease is gone anyway and the server
   * offers the job again.
   */
  async postJobCall(job, verb, body) {
    const path = `/v1/worker/jobs/${job.id}/${verb}`;
    const giveUp = Date.now() + this.cfg.leaseSeconds * 1000;
    const next = backoff();
    for (;;) {
      let reason;
      try {
        const a = await this.api.post(path, body, { timeoutMs: 30_000, traceparent: job.traceparent });
        if (!a.retryable) return a;
        reason = a.describe();
      } catch (e) {
        reason = `network error: ${errorText(e)}`;
      }
      const delay = next();
      if (Date.now() + delay > giveUp) {
        log(`job ${job.id}: ${verb} failed (${reason}); giving up, the lease will expire`);
        return null;
      }
      log(`job ${job.id}: ${verb} failed (${reason}); retrying in ${(delay / 1000).toFixed(1)}s`);
      await sleep(delay);
    }
  }
}

function failure(job, code, message, retryable) {
  return JSON.stringify({ leaseId: job.leaseId, error: { code, message: String(message).slice(0, 1000) }, retryable });
}

async function main() {
  const cfg = loadConfig(process.env);
  if (cfg.errors.length > 0) {
    cfg.errors.forEach((e) => log(e));
    return 2;
  }
  const worker = new Worker(cfg, handle);
  const onSignal = (name) => {
    if (worker.stopping.signal.aborted) {
      log("second signal, exiting now");
      process.exit(1);
    }
    log(`${name}: finishing running jobs, then exiting`);
    worker.stop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  log(`claiming ${cfg.types.join(",")} at ${cfg.url} with ${cfg.concurrency} loop(s)`);
  await Promise.all(Array.from({ length: cfg.concurrency }, () => worker.loop()));
  log("stopped");
  return worker.exitCode;
}

// Run only when started as a program, so that other code can import the helpers.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exit(await main());
}
