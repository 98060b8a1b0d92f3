/**
 * The composition of the Lambda handlers: the real adapters, each built on first use and then reused
 * by every invocation of the process (a warm Lambda, or the local gateway). Nothing is opened, and no
 * setting is read, before a handler needs it.
 *
 * Each port is a module of its own beside this one (store.ts, bus.ts, log.ts, history.ts), and a
 * handler imports the ports it uses and no other, so that its bundle carries only their client
 * libraries: `$connect` bundles the DynamoDB store alone, not kafkajs, ioredis and pg. This module
 * holds what they share, and imports no adapter.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoWire } from "../adapters/dynamo-wire";
import type { EventLog } from "../ports";

/**
 * Parts of the wiring a host may wrap: a test injects faults at a port's edge; the local stack
 * meters what the handlers would be billed for.
 */
export interface ServiceOverrides {
  log?: (real: EventLog) => EventLog;
  dynamo?: (real: DynamoDBClient) => DynamoDBClient;
  dynamoWire?: (real: DynamoWire) => DynamoWire;
}

let overrides: ServiceOverrides = {};

/** What was made in this process, to close and forget on `closeServices`. */
const made = new Set<{ forget: () => void; close: () => Promise<unknown> }>();

/**
 * A value made once per process, on first use; a failed attempt is forgotten so the next call tries
 * again. `close` ends it on `closeServices`, after which the next call makes a new one (with the
 * settings read again).
 */
export function service<T>(make: () => Promise<T>, close?: (value: T) => Promise<unknown>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    if (!value) {
      const attempt = make();
      const entry = {
        forget: () => {
          if (value === attempt) value = undefined;
        },
        close: async () => {
          if (close) await close(await attempt);
        },
      };
      value = attempt;
      made.add(entry);
      attempt.catch(() => {
        entry.forget();
        made.delete(entry);
      });
    }
    return value;
  };
}

/** Replaces parts of the wiring (tests inject faults at a port's edge). Call before first use. */
export function overrideServices(next: ServiceOverrides): void {
  overrides = next;
}

/** The replacements `overrideServices` set, read by the port modules when they make a port. */
export function serviceOverrides(): ServiceOverrides {
  return overrides;
}

/** Closes what the process opened (the local stack's shutdown; a Lambda never calls it). */
export async function closeServices(): Promise<void> {
  const current = [...made];
  made.clear();
  for (const entry of current) entry.forget();
  await Promise.allSettled(current.map((entry) => entry.close()));
}
