// @ts-check
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const nodeBuiltins = [
  'fs',
  'path',
  'child_process',
  'crypto',
  'os',
  'net',
  'http',
  'https',
  'stream',
  'url',
  'util',
  'zlib',
  'events',
  'worker_threads',
  'dns',
  'tls',
  'readline',
  'process',
  'timers',
  'buffer',
  'cluster',
  'dgram',
];

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
          paths: nodeBuiltins.flatMap((m) => [
            { name: m, message: 'Workflow code must be deterministic: do I/O in an activity.', allowTypeImports: true },
            {
              name: `node:${m}`,
              message: 'Workflow code must be deterministic: do I/O in an activity.',
              allowTypeImports: true,
            },
          ]),
          patterns: [
            {
              group: [
                'simple-git',
                'dockerode',
                '@kubernetes/*',
                '@tensorflow/*',
                '@temporalio/client',
                '@temporalio/worker',
                '@temporalio/activity',
                'yaml',
              ],
              message:
                'Workflow code must be deterministic: infrastructure libraries and activities belong in activities/.',
              allowTypeImports: true,
            },
            {
              // A regex, not a glob: `../activities/*` misses the barrel `../activities` and deeper relative paths.
              regex: '^(\\.\\./)+(activities|client|config)(/.*)?$',
              message:
                'Workflow code must be deterministic: activities, client and config code run outside the workflow; import only their types (`import type`).',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
