import type { Controller } from '../controller/controller.js';

/**
 * What the console uses of the controller: a narrow view, so the console's unit tests and its
 * 200-plugin measurement can stand a fake in for it. `Controller` satisfies it.
 */
export type ConsoleHost = Pick<
  Controller,
  | 'list'
  | 'status'
  | 'stats'
  | 'manifests'
  | 'logs'
  | 'followLogs'
  | 'start'
  | 'stop'
  | 'restart'
  | 'revokeMethod'
  | 'grantMethod'
  | 'revokeHost'
  | 'grantHost'
  | 'revokePath'
  | 'grantPath'
  | 'setLimits'
> & {
  readonly audit: Pick<Controller['audit'], 'file' | 'record'>;
  readonly grants: Pick<Controller['grants'], 'isMethodRevoked' | 'revokedHosts'>;
  readonly metrics: Pick<Controller['metrics'], 'callSnapshot'>;
};
