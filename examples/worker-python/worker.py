#!/usr/bin/env python3
"""A Boomerang worker in Python 3, standard library only.

Copy this file, replace handle() with your own work, and run it:

    BOOMERANG_URL=http://localhost:8080 BOOMERANG_WORKER_KEY=bmw_... \\
    BOOMERANG_TYPES=wordcount python3 worker.py

Each of BOOMERANG_CONCURRENCY threads long-polls POST /v1/worker/claim. With
a job in hand it runs handle() while a heartbeat thread renews the lease every
leaseSeconds/3, then reports complete or fail. A 409 from the server
(lease-lost, job-canceled, job-expired) means the job is no longer ours: the
worker drops it without reporting anything. Network errors and 5xx answers are
retried with exponential backoff. SIGTERM or SIGINT lets running jobs finish,
then the worker exits 0; a second signal exits at once.
"""

import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse

PROBLEM_BASE = "https://boomerang.dev/problems/"


# ---- the work: replace handle() with yours ----------------------------------


class PermanentError(Exception):
    """Raise it from handle() for a failure that retrying will not fix."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def handle(job):
    """The example work: counts the words of payload.text.

    payload: {"text": "...", "ref": any JSON (echoed back as is),
              "delaySeconds": number (optional; stands for slow work)}
    result:  {"words": <count>, "ref": <payload.ref>}

    Python ints are exact, so a ref of any size comes back value-exact.
    job.progress() sends a heartbeat at once and raises JobDropped if the job
    is no longer ours (canceled, expired, lease lost): long work should call it
    between steps.
    """
    payload = job.payload if isinstance(job.payload, dict) else {}
    text = payload.get("text")
    if not isinstance(text, str):
        raise PermanentError("bad_payload", "payload.text must be a string")
    delay = payload.get("delaySeconds", 0)
    if not isinstance(delay, (int, float)) or not 0 <= delay <= 3600:
        raise PermanentError("bad_payload", "payload.delaySeconds must be a number of seconds, 0 to 3600")

    job.progress(10, "counting words")
    time.sleep(delay / 2)
    words = len(text.split())
    job.progress(50, "counted %d words" % words)
    time.sleep(delay / 2)
    return {"words": words, "ref": payload.get("ref")}


# ---- configuration -------------------------------------------------------------


class Config:
    def __init__(self, env):
        errors = []
        self.url = env.get("BOOMERANG_URL", "").rstrip("/")
        u = urllib.parse.urlsplit(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            errors.append("BOOMERANG_URL must be an http:// or https:// URL")
        self.key = env.get("BOOMERANG_WORKER_KEY", "")
        if not self.key.startswith("bmw_"):
            errors.append("BOOMERANG_WORKER_KEY must be a worker key (bmw_...)")
        self.types = [t.strip() for t in env.get("BOOMERANG_TYPES", "").split(",") if t.strip()]
        if not self.types:
            errors.append("BOOMERANG_TYPES must list the job types to claim, e.g. wordcount,transcode")

        def integer(name, default, low, high):
            raw = env.get(name, "") or str(default)
            try:
                n = int(raw)
            except ValueError:
                n = None
            if n is None or not low <= n <= high:
                errors.append("%s must be an integer from %d to %d, not %r" % (name, low, high, raw))
                return default
            return n

        self.concurrency = integer("BOOMERANG_CONCURRENCY", 1, 1, 1000)
        self.lease_seconds = integer("BOOMERANG_LEASE_SECONDS", 60, 5, 3600)
        self.wait_seconds = integer("BOOMERANG_WAIT_SECONDS", 30, 0, 60)
        self.errors = errors


# ---- HTTP ------------------------------------------------------------------------


class Answer:
    """One HTTP answer: status, raw body and, for errors, the problem slug."""

    def __init__(self, status, raw):
        self.status = status
        self.raw = raw
        self.problem = {}
        if status >= 400 and raw:
            try:
                self.problem = json.loads(raw)
            except ValueError:
                pass
        slug = str(self.problem.get("type", ""))
        self.slug = slug[len(PROBLEM_BASE):] if slug.startswith(PROBLEM_BASE) else slug

    def json(self):
        return json.loads(self.raw)

    def describe(self):
        p = self.problem
        detail = p.get("detail") or p.get("title") or self.raw[:200].decode("utf-8", "replace")
        return "HTTP %d %s: %s" % (self.status, self.slug or "", detail)


class Api:
    """Posts JSON to the worker routes. One connection per call keeps it simple;
    a claim's connection is registered so that stop() can cut its long poll."""

    def __init__(self, cfg):
        u = urllib.parse.urlsplit(cfg.url)
        self._conn_class = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        self._host, self._port, self._prefix = u.hostname, u.port, u.path.rstrip("/")
        self._headers = {
            "Authorization": "Bearer " + cfg.key,
            "Content-Type": "application/json",
            "User-Agent": "boomerang-worker-python/1",
        }

    def post(self, path, body, timeout, register=None, traceparent=None):
        """Posts once. Raises OSError or http.client.HTTPException on network errors.
        traceparent, the job's trace context from its claim, joins the call to the
        job's trace when the server exports traces."""
        conn = self._conn_class(self._host, self._port, timeout=timeout)
        try:
            conn.connect()
            if register is not None:
                register(conn)
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers = self._headers
            if traceparent:
                headers = dict(headers, traceparent=traceparent)
            conn.request("POST", self._prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            return Answer(resp.status, resp.read())
        finally:
            conn.close()


def retryable(answer):
    return answer.status >= 500 or answer.status == 429


class Backoff:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to 30 s."""

    def __init__(self):
        self.delay = 0.5

    def next(self):
        d = self.delay * random.uniform(0.5, 1.0)
        self.delay = min(self.delay * 2, 30.0)
        return d


def log(*parts):
    # Never pass the worker key here: it is only ever in Api._headers.
    print(time.strftime("%H:%M:%S"), "boomerang-worker:", *parts, file=sys.stderr, flush=True)


# ---- a claimed job ------------------------------------------------------------------


class JobDropped(Exception):
    """The server took the job back (lease-lost, job-canceled, job-expired)."""


class Job:
    def __init__(self, worker, claim):
        self.id = claim["requestId"]
        self.type = claim["type"]
        self.payload = claim.get("payload")
        self.metadata = claim.get("metadata") or {}
        self.attempt = claim.get("attempt", 1)
        self.deadline = claim.get("deadline")
        self.lease_id = claim["leaseId"]
        # The job's trace context (W3C), when the server exports traces: sent
        # back with every call about the job; a handler may pass it on too.
        self.traceparent = claim.get("traceparent")
        self._worker = worker
        self._progress = None
        self._beat_lock = threading.Lock()  # heartbeats go one at a time, in order
        self._finished = threading.Event()
        self.dropped = threading.Event()
        self.drop_reason = ""

    def progress(self, percent, message=""):
        """Records progress, sends it in a heartbeat now, and raises JobDropped
        if the job is no longer ours."""
        self._progress = {"percent": percent, "message": message}
        self.heartbeat()
        self.check()

    def check(self):
        """Raises JobDropped if the server took the job back."""
        if self.dropped.is_set():
            raise JobDropped(self.drop_reason)

    def drop(self, reason):
        self.drop_reason = reason
        self.dropped.set()

    def heartbeat(self):
        """Renews the lease with the latest progress. A failed heartbeat is not
        retried: the next one comes within leaseSeconds/3."""
        if self.dropped.is_set():
            return
        body = {"leaseId": self.lease_id}
        if self._progress is not None:
            body["progress"] = self._progress
        with self._beat_lock:
            try:
                a = self._worker.api.post("/v1/worker/jobs/%s/heartbeat" % self.id, body, timeout=10,
                                          traceparent=self.traceparent)
            except (OSError, http.client.HTTPException) as e:
                log("job %s: heartbeat failed: %s" % (self.id, e))
                return
        if a.status == 409:
            self.drop(a.slug or "conflict")
        elif a.status != 200:
            log("job %s: heartbeat refused: %s" % (self.id, a.describe()))

    def beat_until_finished(self):
        interval = self._worker.cfg.lease_seconds / 3
        while not self._finished.wait(interval):
            self.heartbeat()
            if self.dropped.is_set():
                return


# ---- the worker ------------------------------------------------------------------------


class Worker:
    def __init__(self, cfg, handler):
        self.cfg = cfg
        self.api = Api(cfg)
        self.handler = handler
        self.stopping = threading.Event()
        self.exit_code = 0
        self._lock = threading.Lock()
        self._claims = set()  # connections of claims in flight, cut by stop()

    def stop(self):
        """Stops claiming and cuts the long polls in flight; running jobs go on."""
        with self._lock:
            self.stopping.set()
            for conn in self._claims:
                if conn.sock is not None:
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def fatal(self, message):
        log(message)
        self.exit_code = 1
        self.stop()

    def loop(self):
        while not self.stopping.is_set():
            try:
                claim = self.claim()
                if claim is not None:
                    self.run(Job(self, claim))
            except Exception:  # a bug or a garbled answer: keep the thread alive
                log("unexpected error:\n%s" % traceback.format_exc().rstrip())
                self.stopping.wait(1)

    def claim(self):
        """Returns a claimed job, or None when the wait ended empty or we stop."""
        body = {"types": self.cfg.types, "waitSeconds": self.cfg.wait_seconds, "leaseSeconds": self.cfg.lease_seconds}
        conns = []

        def register(conn):
            with self._lock:
                self._claims.add(conn)
                conns.append(conn)
                if self.stopping.is_set():  # stop() ran before we registered
                    raise ConnectionAbortedError("stopping")

        backoff = Backoff()
        while not self.stopping.is_set():
            try:
                a = self.api.post("/v1/worker/claim", body, timeout=self.cfg.wait_seconds + 15, register=register)
            except (OSError, http.client.HTTPException) as e:
                a, reason = None, "network error: %s" % e
            finally:
                with self._lock:
                    for c in conns:
                        self._claims.discard(c)
                    conns.clear()
            if a is not None and a.status == 200:
                return a.json()
            if a is not None and a.status == 204:
                return None
            if a is not None and not retryable(a):
                self.fatal("claim refused, stopping: %s" % a.describe())
                return None
            if self.stopping.is_set():
                return None
            delay = backoff.next()
            log("claim: %s; retrying in %.1fs" % (reason if a is None else a.describe(), delay))
            self.stopping.wait(delay)
        return None

    def run(self, job):
        log("job %s (%s, attempt %s) claimed" % (job.id, job.type, job.attempt))
        beater = threading.Thread(target=job.beat_until_finished, name="heartbeat-" + job.id, daemon=True)
        beater.start()
        report = None
        try:
            report = ("complete", {"leaseId": job.lease_id, "result": self.handler(job)})
        except JobDropped:
            pass
        except PermanentError as e:
            report = ("fail", failure(job, e.code, str(e), False))
        except Exception as e:
            log("job %s: handler raised:\n%s" % (job.id, traceback.format_exc().rstrip()))
            report = ("fail", failure(job, "handler_error", "%s: %s" % (type(e).__name__, e), True))
        finally:
            job._finished.set()
            beater.join()
        if job.dropped.is_set() or report is None:
            log("job %s dropped: %s" % (job.id, job.drop_reason))
            return
        self.report(job, *report)

    def report(self, job, verb, body):
        a = self.post_job_call(job, verb, body)
        if a is None:
            return
        if a.status == 200:
            log("job %s: %s -> %s" % (job.id, verb, a.json().get("status")))
        elif a.status == 409:
            log("job %s dropped: %s" % (job.id, a.slug or "conflict"))
        elif verb == "complete" and a.status in (413, 422):
            log("job %s: result refused (%s); reporting a failure" % (job.id, a.describe()))
            detail = a.problem.get("detail") or "the server refused the result"
            self.report(job, "fail", failure(job, "result_rejected", detail, False))
        else:
            log("job %s: %s refused: %s" % (job.id, verb, a.describe()))

    def post_job_call(self, job, verb, body):
        """Posts complete or fail, retrying network errors and 5xx with the same
        body for up to leaseSeconds; past that the lease is gone anyway and the
        server offers the job again."""
        path = "/v1/worker/jobs/%s/%s" % (job.id, verb)
        give_up = time.monotonic() + self.cfg.lease_seconds
        backoff = Backoff()
        while True:
            try:
                a = self.api.post(path, body, timeout=30, traceparent=job.traceparent)
                if not retryable(a):
                    return a
                reason = a.describe()
            except (OSError, http.client.HTTPException) as e:
                reason = "network error: %s" % e
            delay = backoff.next()
            if time.monotonic() + delay > give_up:
                log("job %s: %s failed (%s); giving up, the lease will expire" % (job.id, verb, reason))
                return None
            log("job %s: %s failed (%s); retrying in %.1fs" % (job.id, verb, reason, delay))
            time.sleep(delay)


def failure(job, code, message, retry):
    return {"leaseId": job.lease_id, "error": {"code": code, "message": message[:1000]}, "retryable": retry}


def main():
    cfg = Config(os.environ)
    if cfg.errors:
        for e in cfg.errors:
            log(e)
        return 2
    worker = Worker(cfg, handle)

    def on_signal(signum, frame):
        if worker.stopping.is_set():
            log("second signal, exiting now")
            os._exit(1)
        log("%s: finishing running jobs, then exiting" % signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads = [threading.Thread(target=worker.loop, name="worker-%d" % i, daemon=True) for i in range(cfg.concurrency)]
    for t in threads:
        t.start()
    log("claiming %s at %s with %d thread(s)" % (",".join(cfg.types), cfg.url, cfg.concurrency))
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # a timed join lets the signal handler run
    log("stopped")
    return worker.exit_code


if __name__ == "__main__":
    sys.exit(main())
