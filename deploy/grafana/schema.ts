/**
 * The type the Aurigraph dashboard (aurigraph.json) is checked against: Grafana's published
 * dashboard schema (npm `@grafana/schema`, pinned in package.json), made stricter where the
 * schema leaves a field open.
 *
 *  - `Dashboard` of `@grafana/schema` (schemaVersion, templating, annotations, panels, ...).
 *  - Each panel is narrowed by its `type` to the panel plugin's own published options
 *    (`Options` / `FieldConfig` of the timeseries, stat and table panelcfg of `@grafana/schema`):
 *    the schema's `Panel.options` is only `Record<string, unknown>`.
 *  - `targets` are Prometheus queries (`PromQuery` below: `DataQuery` of `@grafana/schema` plus
 *    the fields of Grafana's Prometheus data source), not `Record<string, unknown>`.
 *  - Rows are `RowPanel`s; other panel types are refused (the dashboard uses only these four).
 *
 * `Json<T>` turns the schema's TypeScript enums (string enums such as `LegendDisplayMode`, whose
 * members a JSON string can never have as its type) into the union of their values
 * (`"list" | "table" | "hidden"`), so that the JSON's strings are checked against exactly the
 * values the enum allows; numeric enums, literal unions and everything else stay as they are.
 */
import type {
  Dashboard,
  DataQuery,
  DataSourceRef,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
} from '@grafana/schema';
import type * as stat from '@grafana/schema/panelcfg/stat';
import type * as table from '@grafana/schema/panelcfg/table';
import type * as timeseries from '@grafana/schema/panelcfg/timeseries';

/** A schema type as JSON can spell it: string enums become the union of their values. */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends readonly (infer E)[]
      ? Json<E>[]
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/** A query of Grafana's Prometheus data source (its `PromQuery`, the fields a dashboard stores). */
export interface PromQuery extends DataQuery {
  datasource?: DataSourceRef;
  /** The PromQL expression. */
  expr: string;
  editorMode?: 'code' | 'builder';
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  interval?: string;
  exemplar?: boolean;
}

/** A panel of plugin `type` with that plugin's published options and custom field config. */
type PanelOf<Type extends string, Options, Custom, Target = PromQuery> = Omit<
  Panel,
  'type' | 'options' | 'fieldConfig' | 'targets'
> & {
  type: Type;
  /** Every panel says what it shows and where its figures come from. */
  description: string;
  options: Options;
  fieldConfig: Omit<FieldConfigSource, 'defaults'> & {
    /** Every panel sets its unit. */
    defaults: Omit<FieldConfig, 'custom'> & { unit: string; custom?: Custom };
  };
  targets: Target[];
};

export type TimeSeriesPanel = PanelOf<'timeseries', timeseries.Options, timeseries.FieldConfig>;
export type StatPanel = PanelOf<'stat', stat.Options, Record<string, never>>;
export type TablePanel = PanelOf<'table', table.Options, table.FieldConfig>;

/** The Aurigraph dashboard's type: Grafana's `Dashboard`, panels narrowed as above. */
export type AurigraphDashboard = Json<
  Omit<Dashboard, 'panels'> & {
    panels: Array<RowPanel | TimeSeriesPanel | StatPanel | TablePanel>;
  }
>;

/**
 * Compile-time check that the narrowing stays within Grafana's own `Dashboard`. The plugins'
 * `Options` / `FieldConfig` and `PromQuery` are interfaces, which TypeScript does not take as the schema's
 * `Record<string, unknown>` (no index signature) although every such object is one; so this
 * check runs with those replaced by `Record<string, unknown>`.
 */
type Assignable<A extends B, B> = A;
type Open = Record<string, unknown>;
export type NarrowsDashboard = Assignable<
  Omit<Dashboard, 'panels'> & {
    panels: Array<
      | RowPanel
      | PanelOf<'timeseries', Open, Open, Open>
      | PanelOf<'stat', Open, Open, Open>
      | PanelOf<'table', Open, Open, Open>
    >;
  },
  Dashboard
>;
