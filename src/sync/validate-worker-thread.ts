// The thread side of validateInWorker (validate-worker.ts): one artifact in (workerData), its Verdict out, then exit.
// A fresh thread per revision, so each gets its own heap limit and a timeout can simply terminate it.

import { parentPort, workerData } from 'node:worker_threads';
import type { ArtifactOk } from '../reconcile/artifact.ts';
import { validate } from '../reconcile/revision.ts';

parentPort?.postMessage(validate(workerData as ArtifactOk));
