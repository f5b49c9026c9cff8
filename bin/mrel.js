#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `./bin/mrel …` works straight from a clone.
import { register } from 'tsx/esm/api';

register();
await import('../client/mrel.ts');
