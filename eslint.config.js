// @ts-check
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

// The layers of DESIGN.md's "Layout" table: what each top-level folder may import. `import-x/no-restricted-paths`
// checks resolved paths, so `../activities`, `../activities/index` and `./../activities/scan` are all one folder; it
// cannot tell `import type` from a value import, so the rules that allow type-only imports are regexes of
// `no-restricted-imports` below.
const PRODUCT_OUTSIDERS = ['./scripts', './test', './bench'];
const layerZones = [
  {
    target: './contract',
    from: ['./activities', './workflows', './client', './config', './workers', './serving', ...PRODUCT_OUTSIDERS],
    message: 'contract/ holds the shapes every part shares; it may import only zod and Temporal definitions.',
  },
  {
    target: './workflows',
    from: ['./client', './config', './workers', ...PRODUCT_OUTSIDERS],
    message:
      'Workflow code must be deterministic and sees only the contract and the types of activities (DESIGN.md, Layout).',
  },
  {
    target: './activities',
    from: ['./client', './workers', ...PRODUCT_OUTSIDERS],
    message: 'activities/ may import the contract, the config loader and libraries (DESIGN.md, Layout).',
  },
  {
    target: './config',
    from: ['./activities', './workflows', './client', './workers', ...PRODUCT_OUTSIDERS],
    message:
      'config/ is data and one loader that imports only the contract: pass gate-specific validators in as parameters.',
  },
  {
    target: './client',
    from: ['./workers', ...PRODUCT_OUTSIDERS],
    message: 'client/ may import the contract, config and activities (DESIGN.md, Layout).',
  },
  {
    target: './workers',
    from: [...PRODUCT_OUTSIDERS],
    message: 'workers/ wire workflows, activities and config (DESIGN.md, Layout).',
  },
  {
    // Workers connect and encrypt exactly as the client does: they share client/connection/ and nothing else of it.
    target: './workers',
    from: './client',
    except: ['./connection'],
    message: 'workers/ may share only client/connection/ (the Temporal connection and the payload codec) of client/.',
  },
  {
    target: './serving',
    from: ['./workflows', './client', './config', './workers', ...PRODUCT_OUTSIDERS],
    message: 'serving/ uses its own code and the contract types (DESIGN.md, Layout).',
  },
  {
    // The server reads and preprocesses a model exactly as the evaluation gates did, so it shares their domain code.
    target: './serving',
    from: './activities',
    except: ['./evaluate', './formats', './store/manifest.ts'],
    message:
      'serving/ may share only the evaluation, format and manifest domain code of activities/ (DESIGN.md, Layout).',
  },
  {
    target: './bench',
    from: ['./test'],
    message: 'Benchmarks run product code against a reference; shared fixtures belong in scripts/, not test/.',
  },
];

/** A value import of workflow code from outside it; `import type` stays allowed (typed starts, typed proxies). */
const workflowValues = (message) => ({ regex: '^(\\.{1,2}/)+workflows(/.*)?$', message, allowTypeImports: true });

// The Temporal adapters: everything else under activities/ is domain code that runs and is tested without Temporal.
const activityAdapters = [
  'activities/index.ts',
  'activities/*/index.ts',
  'activities/scan/image/index.ts',
  'activities/evaluate/gates.ts',
  'activities/gate/**/*.ts',
  'activities/common/activity-context.ts',
];
const activitiesNoWorkflowValues = workflowValues(
  'Activities never run workflow code: import only its types (`import type`).',
);

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      '.venv/**',
      '.temporal/**',
      '.data/**',
      '.tools/**',
      'test/histories/**',
      '.bench-*/**',
      'dist/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    // Without a resolver the extensionless `.ts` imports resolve to nothing and `import-x/no-cycle` sees no edges.
    settings: {
      'import-x/extensions': ['.ts', '.js', '.mjs'],
      'import-x/external-module-folders': ['node_modules', 'node_modules/@types'],
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: layerZones }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Workflow code is replayed: it must stay deterministic, so no I/O and no infrastructure clients.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // Every package but the workflow SDK and zod (the contract's schemas already run inside the workflow,
              // in update validators, so zod is part of it either way): no Node builtins, no infrastructure clients.
              regex: '^(?![.])(?!@temporalio/workflow$)(?!zod(/.*)?$)',
              message:
                'Workflow code must be deterministic: I/O, Node builtins and infrastructure libraries belong in activities/.',
              allowTypeImports: true,
            },
            {
              // A regex, not a glob: `../activities/*` misses the barrel `../activities` and deeper relative paths.
              regex: '^(\\.\\./)+activities(/.*)?$',
              message:
                'Workflow code must be deterministic: activities run outside the workflow; import only their types (`import type`).',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
  {
    // The shapes every layer shares, workflows included: nothing here may do I/O or pull in a client library.
    // @temporalio/common and @temporalio/workflow only for the signal, query and update definitions and search
    // attribute keys; `ms` for the duration grammar, which must be Temporal's own (the package Temporal parses with).
    files: ['contract/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(?![.])(?!zod(/.*)?$)(?!ms$)(?!@temporalio/(common|workflow)$)',
              message:
                'contract/ may import only zod, ms, @temporalio/common and @temporalio/workflow (DESIGN.md, Layout).',
            },
          ],
        },
      ],
    },
  },
  {
    // Domain code: pure enough to run in the CLI and in tests without a worker; adapters translate its errors.
    files: ['activities/**/*.ts'],
    ignores: activityAdapters,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@temporalio/*'],
              message:
                'Domain code under activities/ imports nothing of Temporal: throw a ProductError and let the adapter (index.ts) map it.',
            },
            activitiesNoWorkflowValues,
          ],
        },
      ],
    },
  },
  {
    files: activityAdapters,
    rules: { 'no-restricted-imports': ['error', { patterns: [activitiesNoWorkflowValues] }] },
  },
  {
    // The start API names the workflow's type for typed starts; the workflow code itself runs only in workers.
    files: ['client/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [workflowValues('client/ starts workflows by name: import only their types (`import type`).')] },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
