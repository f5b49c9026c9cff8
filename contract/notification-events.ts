/**
 * What a notification can be about; a webhook names the ones it wants (default: all). Apart from types.ts so that the
 * config loader can name them without building every request schema at start (each `mrel` command pays for that).
 */
export const NOTIFICATION_EVENTS = [
  'awaiting-approval',
  'gate-failed',
  'released',
  'rejected',
  'expired',
  'failed',
  'rollout-stalled',
  'rolled-back',
  'monitoring-breached',
] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];
