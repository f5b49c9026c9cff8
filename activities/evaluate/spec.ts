/**
 * What an evaluation needs to know about a model's inputs and outputs: the feature columns and their preprocessing,
 * the label, its classes, the favorable label and the decision threshold. It comes from the model's metadata
 * (`userDefinedMetadata` in model.json) and can be overridden by the request's evaluation block or CLI flags.
 */
import { z } from 'zod';
import { valueKey } from './dataset';
import { EvaluationError } from './errors';

const featureObjectSchema = z
  .object({
    name: z.string().min(1),
    /** continuous: standardised number that attacks may move; categorical: one-hot over `categories`. */
    type: z.enum(['continuous', 'categorical']).default('continuous'),
    /** Categorical values in one-hot order. Without them a categorical column is read as its numeric code. */
    categories: z
      .array(z.union([z.string(), z.number()]))
      .min(1)
      .optional(),
    /** Standardisation of a continuous feature: input = (value − mean) / std. */
    mean: z.number().default(0),
    std: z.number().positive('std must be > 0').default(1),
    /** False for features an applicant cannot change (age, say): attacks leave them alone. */
    mutable: z.boolean().default(true),
  })
  .strict();

/** A feature as written in metadata: a column name (continuous, no scaling) or the full object. */
export const featureSpecSchema = z.union([z.string().min(1), featureObjectSchema]);

export const modelSpecSchema = z.object({
  features: z.array(featureSpecSchema).min(1, 'name at least one feature column'),
  label: z.string().min(1),
  /** The label value of each model output, in output order (binary classifiers: two). */
  classes: z
    .array(z.union([z.string(), z.number(), z.boolean()]))
    .length(2, 'the evaluation gates handle binary classifiers: give exactly two classes')
    .default([0, 1]),
  favorable: z.union([z.string(), z.number(), z.boolean()]),
  /** Predicted class is classes[1] when its probability is at least this. */
  threshold: z.number().gt(0).lt(1).default(0.5),
  /** Whether the model's output is probabilities (softmax/sigmoid) or logits. Layers models are inspected. */
  output: z.enum(['probabilities', 'logits']).optional(),
});

export type FeatureSpec = z.output<typeof featureObjectSchema>;

export interface ModelSpec {
  features: FeatureSpec[];
  label: string;
  /** Comparison keys (see valueKey) of the classes, in output order. */
  classes: [string, string];
  /** Index into classes of the favorable label. */
  favorableIndex: 0 | 1;
  favorable: string;
  threshold: number;
  output?: 'probabilities' | 'logits';
}

/** One column of the model's input vector. */
export interface InputColumn {
  feature: string;
  /** For one-hot columns: the category this column stands for. */
  category?: string;
  /** Attacks may move it (continuous, mutable, not protected). */
  movable: boolean;
}

/**
 * Merges the model's metadata with overrides (request or CLI) and validates the result. Errors name the field and
 * where it came from.
 */
export function resolveModelSpec(metadata: unknown, overrides: Record<string, unknown> = {}): ModelSpec {
  const base = metadata && typeof metadata === 'object' ? (metadata as Record<string, unknown>) : {};
  const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const merged = { ...base, ...given };
  const missing = (['features', 'label', 'favorable'] as const).filter((k) => merged[k] === undefined);
  if (missing.length > 0) {
    throw new EvaluationError(
      'InvalidEvaluationConfig',
      missing
        .map((k) => `${k} is missing: give it in the model's userDefinedMetadata.${k} or the request's evaluation.${k}`)
        .join('\n'),
    );
  }
  const parsed = modelSpecSchema.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const field = i.path.join('.') || '(root)';
      const from = field.split('.')[0]! in given ? 'evaluation' : 'model metadata (userDefinedMetadata)';
      return `${from}.${field}: ${i.message}`;
    });
    throw new EvaluationError('InvalidEvaluationConfig', lines.join('\n'));
  }
  const spec = parsed.data;
  const features = spec.features.map((f) => featureObjectSchema.parse(typeof f === 'string' ? { name: f } : f));
  const names = new Set<string>();
  for (const f of features) {
    if (names.has(f.name))
      throw new EvaluationError('InvalidEvaluationConfig', `features: "${f.name}" is listed twice`);
    names.add(f.name);
  }
  const classes = spec.classes.map((c) => valueKey(c)) as [string, string];
  if (classes[0] === classes[1]) {
    throw new EvaluationError('InvalidEvaluationConfig', `classes: the two classes are the same (${classes[0]})`);
  }
  const favorable = valueKey(spec.favorable);
  const favorableIndex = classes.indexOf(favorable);
  if (favorableIndex === -1) {
    throw new EvaluationError(
      'InvalidEvaluationConfig',
      `favorable: ${JSON.stringify(spec.favorable)} is not one of the model's classes (${classes.join(', ')})`,
    );
  }
  return {
    features,
    label: spec.label,
    classes,
    favorableIndex: favorableIndex as 0 | 1,
    favorable,
    threshold: spec.threshold,
    output: spec.output,
  };
}

/** The model's input columns in order: one per continuous feature, one per category of a one-hot feature. */
export function inputColumns(spec: ModelSpec, protectedAttributes: readonly string[]): InputColumn[] {
  const columns: InputColumn[] = [];
  for (const f of spec.features) {
    if (f.type === 'categorical' && f.categories) {
      for (const c of f.categories) columns.push({ feature: f.name, category: valueKey(c), movable: false });
    } else {
      const movable = f.type === 'continuous' && f.mutable && !protectedAttributes.includes(f.name);
      columns.push({ feature: f.name, movable });
    }
  }
  return columns;
}
