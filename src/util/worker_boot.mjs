// Entry of the project's worker threads (data-parallel replicas, data-loading workers). Node does not
// carry tsx's TypeScript loader into worker threads, so register it here before importing the
// TypeScript entry named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
