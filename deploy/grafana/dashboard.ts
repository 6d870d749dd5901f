/**
 * deploy/grafana/aurigraph.json, typed with Grafana's published dashboard schema (see schema.ts).
 * Checked by deploy/check-grafana.sh with `tsc --noEmit` (strict), in two layers:
 *
 * 1. HERE, the JSON as imported (resolveJsonModule). TypeScript types an imported JSON file with
 *    widened literals (every string is `string`, not `"timeseries"`), and an imported value gets
 *    no excess-property check; so this layer checks the file against `Widened<AurigraphDashboard>`:
 *    every required field is present (schemaVersion, each panel's description, options,
 *    fieldConfig.defaults.unit and targets with expr, ...) and every known field has the schema's
 *    type (numbers, booleans, strings, arrays, nested objects).
 *
 * 2. In check-grafana.sh, the same JSON pasted as an object literal into a generated module
 *    (`export default <aurigraph.json> satisfies AurigraphDashboard`): an object literal is
 *    checked against the literal unions and enums of the schema (panel and variable types, legend
 *    and tooltip modes, threshold and color modes, mapping types, ...) and for excess properties
 *    at every level, so a misspelt or unknown field is an error too. Layer 2 implies layer 1;
 *    layer 1 keeps the import of the real file, with its types, for code that wants it.
 */
import type { Dashboard } from '@grafana/schema';
import type { AurigraphDashboard } from './schema';
import json from './aurigraph.json';

/** `T` with its string literal unions widened to `string` (what resolveJsonModule infers). */
type Widened<T> = T extends string
  ? string
  : T extends number
    ? number
    : T extends boolean
      ? boolean
      : T extends readonly (infer E)[]
        ? Widened<E>[]
        : T extends object
          ? { [K in keyof T]: Widened<T[K]> }
          : T;

const imported: Widened<AurigraphDashboard> = json;

/**
 * The dashboard as Grafana's `Dashboard`. The cast is sound only because layer 2 (the generated
 * `satisfies AurigraphDashboard` module) has checked the same JSON, and schema.ts checks that
 * `AurigraphDashboard` narrows `Dashboard`.
 */
export const dashboard: Dashboard = imported as unknown as Dashboard;
export default dashboard;
