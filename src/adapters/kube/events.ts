// events.k8s.io/v1 Events. A new-style Event (one with eventTime) about a cluster-scoped object (Gateway, Topology)
// must live in kube-system on Kubernetes 1.20 (1.22+ also accept `default`), so DEFAULT_EVENT_NAMESPACE is
// kube-system: it works on every version.

import { randomBytes } from 'node:crypto';
import type { KubeConfig } from './kubeconfig.ts';
import { kubeRequest } from './client.ts';

export const DEFAULT_EVENT_NAMESPACE = 'kube-system';
export const REPORTING_CONTROLLER = 'corvid.dev/sync';

export interface EventRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

export interface EventInput {
  regarding: EventRef;
  type: 'Normal' | 'Warning';
  /** CamelCase, e.g. `Elected`, `Failover`, `DriftRepaired`, `RevisionRejected`. */
  reason: string;
  /** CamelCase verb, e.g. `Elect`, `Apply`, `Validate`. */
  action: string;
  /** Human-readable, at most 1 kB. */
  note: string;
}

/** RFC 3339 with microseconds (metav1.MicroTime). */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface EventRecorder {
  record(e: EventInput): Promise<void>;
}

/**
 * A recorder that creates one Event per call in `namespace`. `instance` is reportingInstance (e.g. the pod name).
 * Failures are passed to onError and otherwise swallowed: an Event is never worth failing a reconcile for.
 */
export function eventRecorder(
  kc: KubeConfig,
  opts: { namespace?: string; instance: string; controller?: string; onError?: (e: unknown) => void; now?: () => Date },
): EventRecorder {
  const namespace = opts.namespace ?? DEFAULT_EVENT_NAMESPACE;
  const controller = opts.controller ?? REPORTING_CONTROLLER;
  return {
    async record(e: EventInput): Promise<void> {
      const when = (opts.now ?? (() => new Date()))();
      const name = `${e.regarding.name}.${when.getTime().toString(16)}${randomBytes(4).toString('hex')}`.slice(0, 253);
      try {
        await kubeRequest(kc, {
          method: 'POST',
          path: `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`,
          body: {
            apiVersion: 'events.k8s.io/v1',
            kind: 'Event',
            metadata: { name, namespace },
            eventTime: microTime(when),
            reportingController: controller,
            reportingInstance: opts.instance,
            action: e.action,
            reason: e.reason,
            type: e.type,
            note: e.note.length > 1024 ? `${e.note.slice(0, 1021)}...` : e.note,
            regarding: e.regarding,
          },
        });
      } catch (err) {
        opts.onError?.(err);
      }
    },
  };
}

/** List the Events of a namespace (newest last), e.g. for tests and `corvid status`. */
export async function listEvents(
  kc: KubeConfig,
  namespace = DEFAULT_EVENT_NAMESPACE,
): Promise<{ reason: string; type: string; note?: string; regarding?: EventRef; eventTime?: string; reportingController?: string }[]> {
  const r = await kubeRequest<{ items?: any[] }>(kc, {
    method: 'GET',
    path: `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`,
  });
  return (r.items ?? []).sort((a, b) => String(a.eventTime ?? '').localeCompare(String(b.eventTime ?? '')));
}
